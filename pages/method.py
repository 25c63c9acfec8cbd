"""Method: the W-DRO formulation, what delta and gamma mean, and the references."""

import streamlit as st

from core.measures import MEASURES
from pages.ui.state import keep_choices


def main() -> None:
    keep_choices()  # first, before any widget: see pages.ui.state.keep
    st.title("Method")
    st.markdown(
        "An attacker may move the test distribution, at a price. The price of moving an image "
        "$x$ to $x'$ is a perceptual dissimilarity $d(x, x')$, zero when nothing changes; labels never move:"
    )
    st.latex(r"c\big((x,y),(x',y')\big) = \begin{cases} d(x,x') & y = y' \\ +\infty & y \neq y' \end{cases}")
    st.latex(r"d(x,x') = 1 - \mathrm{SSIM}_{\mathrm{pad}}(x,x')")  # apart: side by side they were clipped at 1024 px
    st.caption("The default cost is SSIM on images padded by reflection, so that every pixel, the border included, "
               "sits in as many windows as the centre (the classic SSIM averages only windows that fit inside the "
               "image and leaves a 28 px image's 5-pixel frame nearly free). Other measures are selectable.")
    st.markdown("The **worst-case risk** within a Wasserstein ball of radius $\\delta$ (the **DRO budget**) "
                "around the $n$ clean examples $P_n$ is")
    st.latex(r"R_\delta(\theta) = \sup_{Q:\ W_c(Q, P_n) \le \delta}\ \mathbb{E}_Q\big[\ell(\theta; X, Y)\big].")
    st.markdown("Strong duality (Blanchet & Murthy 2019; Gao & Kleywegt 2016) turns it into a search over one "
                "multiplier $\\gamma \\ge 0$ and $n$ independent image attacks:")
    st.latex(r"\begin{aligned} R_\delta(\theta) = \inf_{\gamma \ge 0}\ \Big\{ & \gamma\,\delta \\ & + \frac{1}{n}\sum_{i=1}^n "
             r"\sup_{x'} \big[\ell(\theta; x', y_i) - \gamma\, d(x_i, x')\big] \Big\}. \end{aligned}")

    st.subheader("Budget delta and multiplier gamma")
    st.markdown(
        "- **Penalty form** (fixed $\\gamma$): each image is attacked on its own by maximising "
        "$\\ell(\\theta; x', y_i) - \\gamma\\, d(x_i, x')$ over $x' \\in [0,1]^{C\\times H\\times W}$. "
        "Large $\\gamma$ makes change expensive: mild, cheap-looking attacks. Small $\\gamma$: strong attacks.\n"
        "- **Budget form** (fixed $\\delta$): the multiplier $\\gamma^*$ is the one at which the average cost "
        "spent equals the budget (complementary slackness):"
    )
    st.latex(r"\frac{1}{n}\sum_{i=1}^n d\big(x_i, x_i'(\gamma^*)\big) = \delta,")
    st.latex(r"\frac{\partial}{\partial\gamma}\Big[\gamma\delta + \tfrac1n\textstyle\sum_i \sup_{x'}(\cdots)\Big] "
             r"= \delta - \tfrac1n\textstyle\sum_i d(x_i, x_i').")
    st.markdown(
        "So $\\gamma$ is the price of perceptual change at which the attacker spends exactly $\\delta$; "
        "$\\delta$ and $\\gamma$ move in opposite directions. This library updates $\\log\\gamma$ *online* "
        "during the ascent (one pass), and keeps bisection on $\\log\\gamma$ as the reference; a final line "
        "search puts the batch exactly on the budget.\n"
        "- The budget is **distributional**: it bounds the *mean* cost, so the worst case spends more on "
        "images that are cheap to flip and nothing on hopeless ones (the histogram on the *SSIM vs L-inf* "
        "page). A **pointwise** budget gives every image at most $\\delta$, the familiar threat model.\n"
        "- With $d = \\lVert x - x'\\rVert_2^2$ this is WRM (Sinha et al. 2018); with the indicator of an "
        "L-inf ball it is PGD (Madry et al. 2018)."
    )

    st.subheader("Perceptual measures")
    st.dataframe([{"measure": m.label, "cost d(x, x')": m.cost_formula, "min side (px)": m.min_size,
                   "needs RGB": m.needs_rgb, "note": m.note, "reference": m.reference} for m in MEASURES.values()],
                 hide_index=True)

    st.subheader("DRO training")
    st.markdown("Training minimises $R_\\delta(\\theta)$ over $\\theta$: the inner maximiser gives the worst-case "
                "batch, the outer step trains on it. Weighting hard examples this way can raise the accuracy of "
                "the worst-off group without group labels.")

    st.subheader("References")
    st.markdown(
        "1. Hua, Xu, Blanchet, Nguyen. *Human Imperceptible Attacks and Applications to Improve Fairness*. "
        "[arXiv:2111.15603](https://arxiv.org/abs/2111.15603), 2021.\n"
        "2. Blanchet, Murthy. *Quantifying Distributional Model Risk via Optimal Transport*. Math. Oper. Res. 2019.\n"
        "3. Gao, Kleywegt. *Distributionally Robust Stochastic Optimization with Wasserstein Distance*. 2016.\n"
        "4. Sinha, Namkoong, Duchi. *Certifying Some Distributional Robustness with Principled Adversarial "
        "Training*. ICLR 2018.\n"
        "5. Madry, Makelov, Schmidt, Tsipras, Vladu. *Towards Deep Learning Models Resistant to Adversarial "
        "Attacks*. ICLR 2018.\n"
        "6. Wang, Bovik, Sheikh, Simoncelli. *Image Quality Assessment: From Error Visibility to Structural "
        "Similarity*. IEEE TIP 2004.\n"
        "7. Sagawa, Koh, Hashimoto, Liang. *Distributionally Robust Neural Networks for Group Shifts*. ICLR 2020.\n"
        "8. Kastryulin, Zakirov, Prokopenko, Dylov. *PyTorch Image Quality: Metrics for Image Quality "
        "Assessment* (piq). 2022."
    )


main()
