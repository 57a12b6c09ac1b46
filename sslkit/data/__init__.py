"""Dataset adapters' shared machinery: records, splits, transforms, loaders."""
