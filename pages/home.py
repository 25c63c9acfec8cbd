"""Home page: what the app shows, the device it runs on, the models available offline."""

import streamlit as st

from core.device import default_device, describe_device
from core.models import MODELS

st.title("Human-imperceptible attacks and fairness")
st.markdown(
    "Adversarial attacks posed as **Wasserstein distributionally robust optimisation** whose "
    "transport cost is a human-based image-quality measure (SSIM first), after Hua, Xu, Blanchet "
    "and Nguyen, [arXiv 2111.15603](https://arxiv.org/abs/2111.15603). The DRO budget says how much "
    "perceptual change the attacker may spend on average over a dataset."
)
st.metric("Running on", describe_device(default_device()))
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
