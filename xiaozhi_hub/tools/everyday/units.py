"""Unit conversions: temperature, length, weight, volume and speed, by their English and Chinese names.

Every unit is linear in its kind's base unit (``base = value * factor + offset``; the offset is only
for temperatures, whose base is the kelvin). US customary volumes (cup, pint, gallon). A name may
mean two units ("ounce": weight, or the fluid ounce of volume); the other unit of the question
decides which.
"""

from __future__ import annotations

from dataclasses import dataclass

from .numbers import format_number, is_exact, rounded


@dataclass(frozen=True)
class Unit:
    id: str
    kind: str
    factor: float
    en: tuple[str, str]           # singular, plural
    zh: str
    names: tuple[str, ...] = ()   # further English and Chinese names (lower case)
    offset: float = 0.0

    def to_base(self, value: float) -> float:
        return value * self.factor + self.offset

    def from_base(self, value: float) -> float:
        return (value - self.offset) / self.factor

    def say(self, value: float, lang: str) -> str:
        if lang == "zh":
            return self.zh
        return self.en[0] if abs(value) == 1 else self.en[1]


def _u(id: str, kind: str, factor: float, en: str, zh: str, *names: str, plural: str | None = None,
       offset: float = 0.0) -> Unit:
    return Unit(id, kind, factor, (en, plural or en + "s"), zh, names, offset)


UNITS: tuple[Unit, ...] = (
    _u("celsius", "temperature", 1.0, "degree Celsius", "摄氏度", "degrees celsius", "celsius", "centigrade",
       "degrees centigrade", "degrees c", "°c", "摄氏", "度", plural="degrees Celsius", offset=273.15),
    _u("fahrenheit", "temperature", 5 / 9, "degree Fahrenheit", "华氏度", "degrees fahrenheit", "fahrenheit",
       "farenheit", "degrees f", "°f", "华氏", plural="degrees Fahrenheit", offset=273.15 - 32 * 5 / 9),
    _u("kelvin", "temperature", 1.0, "kelvin", "开尔文", "kelvins", "degrees kelvin", "开氏度", plural="kelvin"),
    _u("mm", "length", 0.001, "millimeter", "毫米", "millimeters", "millimetre", "millimetres", "mm"),
    _u("cm", "length", 0.01, "centimeter", "厘米", "centimeters", "centimetre", "centimetres", "cm", "公分"),
    _u("m", "length", 1.0, "meter", "米", "meters", "metre", "metres"),
    _u("km", "length", 1000.0, "kilometer", "公里", "kilometers", "kilometre", "kilometres", "km", "千米"),
    _u("in", "length", 0.0254, "inch", "英寸", "inches", plural="inches"),
    _u("ft", "length", 0.3048, "foot", "英尺", "feet", "ft", plural="feet"),
    _u("yd", "length", 0.9144, "yard", "码", "yards"),
    _u("mi", "length", 1609.344, "mile", "英里", "miles"),
    _u("mg", "weight", 1e-6, "milligram", "毫克", "milligrams", "mg"),
    _u("g", "weight", 0.001, "gram", "克", "grams", "gramme", "grammes"),
    _u("kg", "weight", 1.0, "kilogram", "公斤", "kilograms", "kilo", "kilos", "kg", "千克"),
    _u("t", "weight", 1000.0, "tonne", "吨", "tonnes", "metric ton", "metric tons"),
    _u("oz", "weight", 0.028349523125, "ounce", "盎司", "ounces", "oz"),
    _u("lb", "weight", 0.45359237, "pound", "磅", "pounds", "lb", "lbs"),
    _u("st", "weight", 6.35029318, "stone", "英石", "stones", plural="stone"),
    _u("jin", "weight", 0.5, "jin", "斤", plural="jin"),
    _u("ml", "volume", 0.001, "milliliter", "毫升", "milliliters", "millilitre", "millilitres", "ml"),
    _u("l", "volume", 1.0, "liter", "升", "liters", "litre", "litres", "公升"),
    _u("tsp", "volume", 0.00492892159375, "teaspoon", "茶匙", "teaspoons", "tsp"),
    _u("tbsp", "volume", 0.01478676478125, "tablespoon", "汤匙", "tablespoons", "tbsp"),
    _u("floz", "volume", 0.0295735295625, "fluid ounce", "液量盎司", "fluid ounces", "fl oz", "盎司", "ounce",
       "ounces", "oz"),
    _u("cup", "volume", 0.2365882365, "cup", "杯", "cups"),
    _u("pt", "volume", 0.473176473, "pint", "品脱", "pints"),
    _u("qt", "volume", 0.946352946, "quart", "夸脱", "quarts"),
    _u("gal", "volume", 3.785411784, "gallon", "加仑", "gallons"),
    _u("m/s", "speed", 1.0, "meter per second", "米每秒", "meters per second", "metre per second",
       "metres per second", "m/s", "米/秒", plural="meters per second"),
    _u("km/h", "speed", 1 / 3.6, "kilometer per hour", "公里每小时", "kilometers per hour", "kilometre per hour",
       "kilometres per hour", "kilometers an hour", "kilometres an hour", "km per hour", "km/h", "kph",
       "千米每小时", "公里/小时", plural="kilometers per hour"),
    _u("mph", "speed", 0.44704, "mile per hour", "英里每小时", "miles per hour", "miles an hour", "mph",
       plural="miles per hour"),
    _u("kn", "speed", 1852 / 3600, "knot", "节", "knots"),
)

# Every name a unit is called by → the units it may be (a name can mean two).
UNIT_NAMES: dict[str, tuple[str, ...]] = {}
for _unit in UNITS:
    for _name in {_unit.en[0].lower(), _unit.en[1].lower(), _unit.zh, *_unit.names}:
        UNIT_NAMES[_name] = (*UNIT_NAMES.get(_name, ()), _unit.id)
BY_ID = {u.id: u for u in UNITS}


class UnitError(ValueError):
    """An unknown unit, or two units of different kinds."""


def find_units(name: str) -> tuple[str, ...]:
    """The ids a unit name may mean (empty when it is none)."""
    return UNIT_NAMES.get(" ".join(name.lower().split()), ())


def pick(src: tuple[str, ...], dst: tuple[str, ...]) -> tuple[Unit, Unit]:
    """The first pair of candidate units of the same kind."""
    for a in src:
        for b in dst:
            if BY_ID[a].kind == BY_ID[b].kind:
                return BY_ID[a], BY_ID[b]
    if not src or not dst:
        raise UnitError("unknown unit")
    raise UnitError(f"cannot convert {BY_ID[src[0]].kind} to {BY_ID[dst[0]].kind}")


@dataclass(frozen=True)
class Conversion:
    value: float
    src: Unit
    dst: Unit
    result: float

    def say(self, lang: str) -> str:
        exact = is_exact(self.result)
        v, r = format_number(rounded(self.value)), format_number(rounded(self.result))
        if lang == "zh":
            return f"{v}{self.src.zh}{'' if exact else '约'}等于{r}{self.dst.zh}。"
        return (f"{v} {self.src.say(self.value, 'en')} is {'' if exact else 'about '}{r} "
                f"{self.dst.say(rounded(self.result), 'en')}.")


def convert(value: float, src: str, dst: str) -> Conversion:
    """``value`` in the unit named ``src`` → the unit named ``dst`` (names or ids, either language)."""
    a, b = pick(find_units(src) or ((src,) if src in BY_ID else ()), find_units(dst) or ((dst,) if dst in BY_ID else ()))
    if a.kind == "temperature" and a.to_base(value) < -1e-9:
        raise UnitError("below absolute zero")
    return Conversion(value, a, b, b.from_base(a.to_base(value)))
