"""Entry point of the Streamlit app: page config and navigation over ``pages/``. Nothing else."""

import streamlit as st

st.set_page_config(page_title="Perceptual W-DRO", page_icon=":eye:", layout="wide")
st.navigation([
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/explorer.py", title="Attack explorer", icon=":material/science:"),
    st.Page("pages/compare.py", title="SSIM vs L-inf", icon=":material/compare:"),
    st.Page("pages/fairness.py", title="Fairness", icon=":material/balance:"),
    st.Page("pages/method.py", title="Method", icon=":material/functions:"),
]).run()
