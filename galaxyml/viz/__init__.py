"""Image grids, figures and exports."""
