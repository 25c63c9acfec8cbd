"""What the pages share, in small modules: ``state`` (kept choices, navigation), ``resources`` (cached
models, data, job slots), ``widgets`` (images, uploads, errors, data choices) and ``figures`` (plotly
figures and exported images). Under ``pages/ui/`` so that Streamlit never lists them as pages."""
