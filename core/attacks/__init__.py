"""Attacks on one shared base: FGSM, PGD (L-inf, L2), the W-DRO perceptual attack, and the
published minimal-perturbation baselines DDN (L2), ALMA (SSIM) and PerC-AL (CIEDE2000), and W-DRO's
cheapest flips (its ascent as a minimal attack under the same cost)."""

from core.attacks.alma import ALMA
from core.attacks.base import ATTACKS, Attack, AttackResult, Perturbation, get_attack, register_attack
from core.attacks.cheapest_flips import CheapestFlips
from core.attacks.ddn import DDN
from core.attacks.perc import PerCAL
from core.attacks.pgd import FGSM, PGD, PGDL2, PGDLinf
from core.attacks.threat import L2Ball, LinfBall
from core.attacks.wdro import WDRO

__all__ = [
    "ALMA",
    "ATTACKS",
    "CheapestFlips",
    "DDN",
    "FGSM",
    "PGD",
    "PGDL2",
    "PGDLinf",
    "WDRO",
    "Attack",
    "AttackResult",
    "L2Ball",
    "LinfBall",
    "PerCAL",
    "Perturbation",
    "get_attack",
    "register_attack",
]
