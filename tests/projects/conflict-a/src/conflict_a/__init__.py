import sys

import idna


def main() -> None:
    print(f"conflict-a idna={idna.__version__} prefix={sys.prefix}")
