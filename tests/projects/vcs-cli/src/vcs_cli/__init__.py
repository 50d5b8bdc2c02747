from importlib.metadata import version


def main() -> None:
    print(f"vcs-cli {version('vcs-cli')}")
