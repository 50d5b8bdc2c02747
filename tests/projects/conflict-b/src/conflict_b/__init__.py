import sys

import idna


def main() -> None:
    print(f"conflict-b idna={idna.__version__} prefix={sys.prefix}")
