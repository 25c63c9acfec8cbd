"""Attacks on one shared base: FGSM, PGD (L-inf, L2) and the W-DRO perceptual attack."""

from core.attacks.base import ATTACKS, Attack, AttackResult, Perturbation, get_attack, register_attack
from core.attacks.pgd import FGSM, PGD, PGDL2, PGDLinf
from core.attacks.threat import L2Ball, LinfBall
from core.attacks.wdro import WDRO

__all__ = [
    "ATTACKS",
    "FGSM",
    "PGD",
    "PGDL2",
    "PGDLinf",
    "WDRO",
    "Attack",
    "AttackResult",
    "L2Ball",
    "LinfBall",
    "Perturbation",
    "get_attack",
    "register_attack",
]
