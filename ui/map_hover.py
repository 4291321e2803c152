"""The galaxy under the cursor of a plotly chart, reported to Python.

Plotly hover labels cannot hold images, so the explore page shows the thumbnail of the hovered galaxy
beside the map instead: this JavaScript-only component (``st.components.v2``, which runs in the app's
page) listens to the ``plotly_hover`` events of the chart with a given key and sets its state to the
hovered point's ``customdata`` (the survey row), debounced, so that only the fragment holding the
component reruns and draws that galaxy.
"""

from __future__ import annotations

import streamlit as st

_JS = """
export default function(component) {
  const { setStateValue, data } = component;
  const registry = (window.__galaxyMapHover = window.__galaxyMapHover || {});
  registry[data.chart] = setStateValue;  // the newest callback of this chart's listener
  const attach = () => {
    const gd = document.querySelector(`.st-key-${data.chart} .js-plotly-plot`);
    if (!gd || typeof gd.on !== "function" || gd.__galaxyHover) return;
    gd.__galaxyHover = true;
    let timer = null, last = null;
    gd.on("plotly_hover", (event) => {
      const point = event && event.points && event.points[0];
      if (!point || point.customdata === undefined) return;
      const row = Array.isArray(point.customdata) ? point.customdata[0] : point.customdata;
      if (row === last) return;
      clearTimeout(timer);
      timer = setTimeout(() => { last = row; registry[data.chart]("row", row); }, data.delay_ms);
    });
  };
  attach();
  const observer = new MutationObserver(attach);
  observer.observe(document.body, { childList: true, subtree: true });
  return () => observer.disconnect();
}
"""

_component = st.components.v2.component("galaxy_map_hover", js=_JS)


def hovered_row(chart_key: str, key: str, delay_ms: int = 60) -> int | None:
    """The survey row of the point last hovered on the chart whose ``key`` is ``chart_key`` (None before any)."""
    result = _component(key=key, data={"chart": chart_key, "delay_ms": delay_ms}, on_row_change=lambda: None)
    row = getattr(result, "row", None)
    return int(row) if row is not None else None
