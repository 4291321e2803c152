"""Events of a plotly chart on the page, reported to Python by JavaScript-only components
(``st.components.v2``, which run in the app's page and attach to the chart with a given key).

- **Hover**: plotly hover labels cannot hold images, so the explore page shows the thumbnail of the
  hovered galaxy beside the map; the hover component sets its state to the hovered point's
  ``customdata`` (the survey row), debounced, from inside a fragment, so that only the fragment reruns.
- **Selection**: the box or lasso drawn (its shape, from ``plotly_selected``) or the point clicked
  (``plotly_click``); a double click clears it. Only the shape travels, never the selected points, so a
  selection of 100,000 galaxies costs what a selection of ten does; Python finds the galaxies inside.
"""

from __future__ import annotations

import streamlit as st

_FIND_CHART = """
  const find = (key) => {
    const gd = document.querySelector(`.st-key-${key} .js-plotly-plot`);
    return gd && typeof gd.on === "function" ? gd : null;
  };
  const watch = (attach) => {
    attach();
    const observer = new MutationObserver(attach);
    observer.observe(document.body, { childList: true, subtree: true });
    return () => observer.disconnect();
  };
"""

_HOVER_JS = """
export default function(component) {
  const { setStateValue, data } = component;
""" + _FIND_CHART + """
  const registry = (window.__galaxyMapHover = window.__galaxyMapHover || {});
  registry[data.chart] = setStateValue;  // the newest callback of this chart's listener
  return watch(() => {
    const gd = find(data.chart);
    if (!gd || gd.__galaxyHover) return;
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
  });
}
"""

_SELECT_JS = """
export default function(component) {
  const { setStateValue, data } = component;
""" + _FIND_CHART + """
  const registry = (window.__galaxyMapSelect = window.__galaxyMapSelect || {});
  registry[data.chart] = setStateValue;
  const send = (value) => registry[data.chart]("selection", value);
  return watch(() => {
    const gd = find(data.chart);
    if (!gd || gd.__galaxySelect) return;
    gd.__galaxySelect = true;
    gd.on("plotly_selected", (event) => {
      if (!event) return;  // a click on the plot with nothing selected
      if (event.lassoPoints) send({ lasso: [{ x: Array.from(event.lassoPoints.x), y: Array.from(event.lassoPoints.y) }], box: [] });
      else if (event.range) send({ box: [{ x: Array.from(event.range.x), y: Array.from(event.range.y) }], lasso: [] });
    });
    gd.on("plotly_click", (event) => {
      const point = event && event.points && event.points[0];
      if (!point || point.customdata === undefined) return;
      send({ click: Array.isArray(point.customdata) ? point.customdata[0] : point.customdata, box: [], lasso: [] });
    });
    gd.on("plotly_deselect", () => send(null));
  });
}
"""

_hover = st.components.v2.component("galaxy_map_hover", js=_HOVER_JS)
_select = st.components.v2.component("galaxy_map_select", js=_SELECT_JS)


def hovered_row(chart_key: str, key: str, delay_ms: int = 60) -> int | None:
    """The survey row of the point last hovered on the chart whose ``key`` is ``chart_key`` (None before any)."""
    result = _hover(key=key, data={"chart": chart_key, "delay_ms": delay_ms}, on_row_change=lambda: None)
    row = getattr(result, "row", None)
    return int(row) if row is not None else None


def map_selection(chart_key: str, key: str) -> dict | None:
    """The selection made on the chart whose ``key`` is ``chart_key``: ``{"box": [...], "lasso": [...]}``
    shapes in data coordinates (as plotly's selection events give them), or ``{"click": row}``; None when
    nothing is selected."""
    result = _select(key=key, data={"chart": chart_key}, on_selection_change=lambda: None)
    return getattr(result, "selection", None)
