"""Turning option dicts into command lines, shared by the engine tests (fixtures and subprocesses)."""


def cli_args(options: dict) -> list[str]:
    """``{'image_size': 32, 'quiet': True}`` -> ``['--image-size', '32', '--quiet']``."""
    args: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is not False and value is not None:
            args += [flag, str(value)]
    return args
