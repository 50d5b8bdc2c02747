import lib
import markupsafe


def main() -> None:
    print("app says", markupsafe.escape("<" + lib.greet().text + ">"))
