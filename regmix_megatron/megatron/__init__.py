"""The Megatron edge: the only subpackage that imports ``megatron.*`` (and reads Megatron's global args)."""
