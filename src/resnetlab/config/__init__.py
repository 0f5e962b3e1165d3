"""Typed configuration: the schema, presets, YAML files and dotted overrides."""

from resnetlab.config.loading import (
    all_keys,
    build_config,
    check_key,
    describe_preset,
    flatten,
    from_dict,
    list_presets,
    load_config,
    parse_overrides,
    read_preset,
    read_yaml,
    save_config,
    to_dict,
)
from resnetlab.config.schema import (
    AugmentConfig,
    Config,
    DataConfig,
    ModelConfig,
    OptimConfig,
    OutputConfig,
    ScheduleConfig,
    StageConfig,
    TrainConfig,
)

__all__ = [
    "AugmentConfig", "Config", "DataConfig", "ModelConfig", "OptimConfig", "OutputConfig",
    "ScheduleConfig", "StageConfig", "TrainConfig", "all_keys", "build_config", "check_key", "describe_preset",
    "flatten", "from_dict", "list_presets", "load_config", "parse_overrides", "read_preset", "read_yaml", "save_config",
    "to_dict",
]
