"""Experiment configuration: the schema, reading files and overrides, and component sections."""
from .loading import apply_override, config_to_dict, load_config, parse_value, read_config_file, validate_config
from .schema import (
    CleaningConfig, CompareConfig, ComponentSection, DataConfig, DataSection, ExperimentConfig, OutputConfig,
    PreprocessConfig,
)
from .sections import Selected, resolve_config, selected, selected_all

__all__ = ["apply_override", "config_to_dict", "load_config", "parse_value", "read_config_file", "validate_config",
           "CleaningConfig", "CompareConfig", "ComponentSection", "DataConfig", "DataSection", "ExperimentConfig",
           "OutputConfig", "PreprocessConfig", "Selected", "resolve_config", "selected", "selected_all"]
