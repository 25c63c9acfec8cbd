"""Home page: what the app shows, the device it runs on, the models available offline."""

import streamlit as st

from core.device import describe_device
from core.models import MODELS
from pages.ui.resources import device
from pages.ui.state import keep_choices


def main() -> None:
    keep_choices()  # first, before any widget: see pages.ui.state.keep
    st.title("Human-imperceptible attacks and fairness")
    st.markdown(
        "Adversarial attacks posed as **Wasserstein distributionally robust optimisation** whose "
        "transport cost is a human-based image-quality measure (SSIM first), after Hua, Xu, Blanchet "
        "and Nguyen, [arXiv 2111.15603](https://arxiv.org/abs/2111.15603). The DRO budget says how much "
        "perceptual change the attacker may spend on average over a dataset."
    )
    st.metric("Running on", describe_device(device()))
    st.markdown(
        "- **Attack explorer**: one image, one attack; clean and attacked side by side, the perturbation, "
        "the SSIM map, class probabilities and every perceptual measure.\n"
        "- **SSIM vs L-inf**: PGD-L-inf and W-DRO (padded-SSIM cost) at the same attack success on a batch of "
        "test images; "
        "where the DRO budget goes.\n"
        "- **Fairness**: per-group accuracy of ERM and W-DRO-trained classifiers, clean and attacked, "
        "and training a model in the background.\n"
        "- **Method**: the formulation, what the budget delta and the multiplier gamma mean, references."
    )
    st.subheader("Models")
    st.dataframe(
        [
            {
                "model": s.name,
                "input": f"{s.channels}x{s.input_size}x{s.input_size}",
                "classes": len(s.labels),
                "available offline": s.available_offline(),
                "description": s.description,
            }
            for s in MODELS.values()
        ],
        hide_index=True,
    )
    st.caption("ImageNet weights are downloaded into torch hub's cache on first use (the explorer offers it), "
               "or loaded from a state-dict file you upload.")


main()
