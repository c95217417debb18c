"""Reports: markdown tables, and what ``slamfw compare`` writes (JSON, ECSV, figures, markdown)."""
