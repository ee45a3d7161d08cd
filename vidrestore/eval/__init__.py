"""Evaluation: fidelity, identity and temporal metrics, and reports for image folders and videos."""
