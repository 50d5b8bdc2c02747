import attrs
import core


@attrs.define
class Greeting:
    text: str

def greet() -> Greeting:
    return Greeting("lib+" + core.greet())
