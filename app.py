"""Entry point of the Streamlit app: page config, session defaults, navigation. Nothing else."""

import streamlit as st

st.set_page_config(page_title="Perceptual W-DRO", page_icon=":eye:", layout="wide")
st.navigation([st.Page("pages/home.py", title="Home", icon=":material/home:", default=True)]).run()
