import markupsafe
import lib

def main() -> None:
    print("app says", markupsafe.escape("<" + lib.greet().text + ">"))
