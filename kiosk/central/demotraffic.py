"""The traffic model of ``kiosk central demo``: who works at a simulated site and what happens
at its doors over some days, as plain facts in the site's local time.

Staff arrive around 08:00 and leave around 17:15 on working days, some go out for lunch, a
few come in on Saturday morning; guards work 12-hour day and night shifts every day (so
someone is always inside), cleaners come early; visitors come for an hour or two, most of
them to a meeting they check in to. Now and then: a fever (the person goes home and stays
away two days), a reading over the threshold that a retest clears, a visitor's badge of an
earlier day, an unknown badge, a web link held to the camera, someone who scans in twice, more
visitors than the daily cap, a tailgater, a thermometer that fails for a while (and one that
has failed now), and a lockdown drill for the whole site. Doors are roles (:data:`IN`, ...);
:mod:`kiosk.central.demokiosks` maps them onto kiosks and records what the kiosks would.

The module is longer than most (about 380 lines): the names and units it draws from and the
rules of a day belong together, and each rule is a few lines.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# The doors: main entrance, main exit, meeting room, side door (both ways), lab (both ways).
IN, OUT, MEETING, SIDE, LAB = "in", "out", "meeting", "side", "lab"
VISITOR_DAILY_CAP = 20  # the kiosks' rules.visitor_daily_cap
NO_BADGE = "https://zalo.me/g/demo"  # a web link held up instead of a badge


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_FAMILY = _words("Nguyễn Trần Lê Phạm Hoàng Huỳnh Phan Vũ Võ Đặng Bùi Đỗ Hồ Ngô Dương Lý")
_FAMILY_WEIGHTS = (38, 11, 9, 7, 5, 4, 4, 4, 3, 2, 2, 2, 2, 2, 2, 1)
_MIDDLE_M = _words("Văn Hữu Đức Minh Quang Thành Công Xuân Hoàng Anh")
_MIDDLE_F = _words("Thị Ngọc Thu Thanh Minh Bảo Mai Kim Thùy Phương")
_GIVEN_M = _words(
    "An Bình Cường Dũng Duy Hải Hiếu Hòa Hùng Huy Khánh Khoa Long Nam Nghĩa Phong Phúc Quân "
    "Sơn Tài Thắng Thành Toàn Trung Tuấn Việt Vinh"
)
_GIVEN_F = _words(
    "Anh Chi Dung Giang Hà Hạnh Hằng Hiền Hoa Hồng Hương Lan Linh Loan Mai My Nga Ngân Nhung "
    "Oanh Phương Quỳnh Tâm Thảo Trang Trinh Uyên Vân Vy Yến"
)
_UNITS = (
    ("Ban Giám đốc", 2),
    ("Phòng Hành chính - Nhân sự", 8),
    ("Phòng Kế toán", 7),
    ("Phòng Kinh doanh", 16),
    ("Phòng Kỹ thuật", 20),
    ("Phòng Công nghệ thông tin", 10),
    ("Phòng Chăm sóc khách hàng", 12),
    ("Phòng Pháp chế", 3),
)
LAB_UNITS = ("Phòng Kỹ thuật", "Phòng Công nghệ thông tin")
GUARDS_UNIT = "Bộ phận Bảo vệ"
_CLEANERS_UNIT = "Công ty TNHH Dịch vụ Vệ sinh Hoàn Mỹ"
_COMPANIES = (
    "Công ty CP Xây dựng Sao Mai",
    "Công ty TNHH Phần mềm Bình Minh",
    "Ngân hàng TMCP Phương Đông",
    "Công ty TNHH Thiết bị Y tế An Khang",
    "Công ty CP Vận tải Hòa Phát",
    "Sở Thông tin và Truyền thông",
    "Công ty TNHH Tư vấn Đông Á",
    "Công ty CP Thực phẩm Thiên Hương",
)
_MEETINGS = (
    "Họp giao ban tuần",
    "Họp dự án Sao Mai",
    "Đào tạo an toàn PCCC",
    "Họp với khách hàng",
    "Phỏng vấn tuyển dụng",
    "Họp kỹ thuật",
    "Tổng kết tháng",
)
_FAULT = "sensor error: I2C error (Remote I/O error) reading register 0x07 of MLX90614 at 0x5a"


@dataclass(frozen=True)
class Person:
    """Someone with a badge: a roster row and an allowlist line."""

    badge: str
    name: str
    unit: str
    kind: str  # staff, visitor, contractor
    phone: str | None = None
    valid_until: datetime | None = None  # a visitor's badge: the end of the visit's day


@dataclass(frozen=True)
class Body:
    """A forehead's reading, for an entry that measures one: a temperature (°C) and whether
    the first reading was over the threshold (a retest then decides)."""

    celsius: float
    ambient_c: float
    retested: bool = False


@dataclass(frozen=True)
class Scan:
    """A code held to a door's camera: a badge id (or :data:`NO_BADGE`), which way."""

    at: datetime
    door: str
    direction: str  # entry or exit (a toggle door decides it too; this is what the person does)
    badge: str
    body: Body | None = None
    meeting: str | None = None  # at the meeting room's door


@dataclass(frozen=True)
class Incident:
    """Something at a door that is not a person: ``thermometer`` failing (``ok`` False) or
    recovering, ``lockdown`` on or off (every gate door of the site), ``tailgating``."""

    at: datetime
    door: str
    what: str
    ok: bool = True
    detail: str = ""


Happening = Scan | Incident


@dataclass
class Traffic:
    """What the model made: the people (roster and allowlist) and what happened, by time."""

    people: list[Person]
    happenings: list[Happening] = field(default_factory=list)


def _name(rng: random.Random) -> str:
    female = rng.random() < 0.5
    middle = rng.choice(_MIDDLE_F if female else _MIDDLE_M)
    given = rng.choice(_GIVEN_F if female else _GIVEN_M)
    return f"{rng.choices(_FAMILY, _FAMILY_WEIGHTS)[0]} {middle} {given}"


def _phone(rng: random.Random) -> str:
    return f"0{rng.choice('389')}{rng.randrange(10_000_000, 99_999_999)}"


def _at(day: date, tz: ZoneInfo, minutes: float) -> datetime:
    """``minutes`` after the local midnight starting ``day`` (may run into the next day)."""
    midnight = datetime.combine(day, time(0), tz)
    return midnight + timedelta(minutes=minutes)


def _normal(rng: random.Random, mean_h: float, sd_min: float, low_h: float, high_h: float) -> float:
    """Minutes after midnight around ``mean_h`` o'clock, within [low_h, high_h] o'clock."""
    return min(max(rng.gauss(mean_h * 60, sd_min), low_h * 60), high_h * 60) + rng.random()


class _Day:
    """One local day's happenings, and the facts the next days need."""

    def __init__(self, model: Model, day: date) -> None:
        self.model, self.day = model, day
        self.rng = model.rng
        self.out: list[Happening] = []
        self.meeting: str | None = None  # the meeting of the check-ins being made

    def at(self, minutes: float) -> datetime:
        return _at(self.day, self.model.tz, minutes)

    def body(self, fever: bool = False) -> Body:
        rng = self.rng
        ambient = round(rng.uniform(26.5, 31.0), 2)
        if fever:
            return Body(round(rng.uniform(37.8, 39.0), 1), ambient, retested=True)
        if rng.random() < 0.02:  # over the threshold once, normal on the retest
            return Body(round(rng.uniform(37.0, 37.4), 1), ambient, retested=True)
        return Body(round(min(max(rng.gauss(36.55, 0.22), 35.9), 37.2), 1), ambient)

    def enter(self, at: float | datetime, door: str, badge: str, *, fever: bool = False) -> None:
        """A scan in at ``at`` (minutes after midnight, or a time); at a meeting room's door,
        a check-in to :attr:`meeting`."""
        when = at if isinstance(at, datetime) else self.at(at)
        if door == MEETING:
            self.out.append(Scan(when, door, "entry", badge, meeting=self.meeting))
        else:
            self.out.append(Scan(when, door, "entry", badge, self.body(fever)))

    def visit(self, person: Person, arrive: float, leave: float, *, door: str = IN) -> None:
        """In at ``arrive``, out at ``leave`` (minutes after midnight)."""
        out_door = SIDE if door == SIDE else OUT
        self.out.append(Scan(self.at(arrive), door, "entry", person.badge, self.body()))
        self.out.append(Scan(self.at(leave), out_door, "exit", person.badge))


class Model:
    """The simulated site: its people, then :meth:`run` for the days up to ``now``."""

    def __init__(self, seed: int, kiosks: int, tz: ZoneInfo) -> None:
        self.rng = random.Random(seed)
        self.tz = tz
        scale = max(1, kiosks)
        self.staff = self._staff(60 * scale)
        self.guards = [
            Person(f"BV-{i + 1:03d}", _name(self.rng), GUARDS_UNIT, "staff", _phone(self.rng))
            for i in range(4)
        ]
        self.cleaners = [
            Person(f"VS-{i + 1:03d}", _name(self.rng), _CLEANERS_UNIT, "contractor")
            for i in range(2 + scale)
        ]
        self.visitors_per_day = 3 * scale
        self.visitors: list[Person] = []
        self.away_until: dict[str, date] = {}  # a fever: home for two days

    def _staff(self, count: int) -> list[Person]:
        units = [unit for unit, weight in _UNITS for _ in range(weight)]
        return [
            Person(
                f"NV-{i + 1:04d}", _name(self.rng), units[i % len(units)], "staff", _phone(self.rng)
            )
            for i in range(count)
        ]

    def run(self, first: date, now: datetime) -> Traffic:
        """Everything that happened from ``first`` (local day) up to ``now``, by time."""
        happenings: list[Happening] = []
        days = (now.astimezone(self.tz).date() - first).days + 1
        drill = _working_day(first + timedelta(days=days * 2 // 3))
        fault = _working_day(first + timedelta(days=days // 2))
        for offset in range(days):
            day = first + timedelta(days=offset)
            one = _Day(self, day)
            self._guards(one, offset)
            if day.weekday() < 6:
                self._cleaners(one)
                self._staff_day(one)
            if day.weekday() < 5:
                self._visitors(one, busy=day.weekday() == 3 and offset % 2 == 0)
                self._oddities(one)
            if day in (fault, drill):
                self._incident(one, lockdown=day == drill)
            happenings += one.out
        current = now - timedelta(minutes=35)
        happenings.append(Incident(current, SIDE, "thermometer", ok=False, detail=_FAULT))
        happenings = sorted((h for h in happenings if h.at <= now), key=lambda h: h.at)
        people = [*self.staff, *self.guards, *self.cleaners, *self.visitors]
        return Traffic(people, happenings)

    def _guards(self, one: _Day, offset: int) -> None:
        """Day shift 06:45-19:05, night shift 18:45-07:05 the next morning, by the side door."""
        day_guard = self.guards[offset % 4]
        night_guard = self.guards[(offset + 2) % 4]
        one.visit(
            day_guard,
            _normal(one.rng, 6.7, 5, 6.5, 6.9),
            _normal(one.rng, 19.1, 5, 19, 19.3),
            door=SIDE,
        )
        night_out = 24 * 60 + _normal(one.rng, 7.1, 5, 7, 7.3)
        one.visit(night_guard, _normal(one.rng, 18.7, 5, 18.5, 18.9), night_out, door=SIDE)

    def _cleaners(self, one: _Day) -> None:
        for person in self.cleaners:
            if one.rng.random() < 0.9:
                one.visit(
                    person,
                    _normal(one.rng, 6.4, 10, 6, 7),
                    _normal(one.rng, 15, 20, 14, 16),
                    door=SIDE,
                )

    def _staff_day(self, one: _Day) -> None:
        rng, saturday = one.rng, one.day.weekday() == 5
        for person in self.staff:
            if self.away_until.get(person.badge, one.day) > one.day:
                continue
            if rng.random() > (0.12 if saturday else 0.92):
                continue
            door = SIDE if rng.random() < 0.15 else IN
            arrive = _normal(rng, 8.0, 25, 6.75, 10)
            if saturday:
                one.visit(person, arrive, _normal(rng, 11.8, 30, 10.5, 13), door=door)
                continue
            if rng.random() < 0.0008:  # about one a week for 300 people
                one.enter(arrive, door, person.badge, fever=True)
                self.away_until[person.badge] = one.day + timedelta(days=3)
                continue
            leave = _normal(rng, 17.25, 40, 15.5, 21)
            if rng.random() < 0.35:  # out for lunch
                lunch = _normal(rng, 11.8, 15, 11.3, 12.5)
                one.visit(person, arrive, lunch, door=door)
                one.visit(person, lunch + rng.uniform(40, 80), leave)
            else:
                one.visit(person, arrive, leave, door=door)
            if person.unit in LAB_UNITS and rng.random() < 0.3:
                into = rng.uniform(arrive + 30, max(arrive + 31, leave - 120))
                one.enter(into, LAB, person.badge)
                one.out.append(Scan(one.at(into + rng.uniform(20, 90)), LAB, "exit", person.badge))

    def _visitors(self, one: _Day, busy: bool) -> None:
        """The day's visitors (a busy day has more than the cap) and the meetings."""
        rng = one.rng
        usual = rng.randint(self.visitors_per_day // 2, self.visitors_per_day * 3 // 2)
        count = VISITOR_DAILY_CAP + 4 if busy else usual
        end = datetime.combine(one.day, time(23, 59), self.tz)  # a badge for the day
        meetings = [
            (rng.choice(_MEETINGS), _normal(rng, hour, 10, hour - 0.5, hour + 0.5))
            for hour in rng.sample([8.5, 9.5, 10.0, 14.0, 15.0, 16.0], rng.randint(2, 3))
        ]
        for n in range(count):
            company = rng.choice(_COMPANIES)
            badge = f"KH-{one.day:%y%m%d}-{n + 1:02d}"
            person = Person(badge, _name(rng), company, "visitor", _phone(rng), end)
            self.visitors.append(person)
            name, start = rng.choice(meetings)
            arrive = (
                start - rng.uniform(5, 20) if rng.random() < 0.7 else _normal(rng, 11, 120, 8, 16)
            )
            leave = arrive + rng.uniform(40, 150)
            one.visit(person, arrive, leave)
            if arrive < start:
                one.meeting = name
                one.enter(start - rng.uniform(0, 4), MEETING, badge)
        for name, start in meetings:  # and the staff of each meeting
            one.meeting = name
            for person in rng.sample(self.staff, rng.randint(4, 12)):
                at = start - rng.uniform(-3, 6)
                one.enter(at, MEETING, person.badge)
                if rng.random() < 0.05:  # scanned again
                    one.enter(at + 0.5, MEETING, person.badge)

    def _oddities(self, one: _Day) -> None:
        """A few denials a day: an old visitor badge, an unknown badge, a web link, a second
        scan in by someone already inside, and now and then a tailgater."""
        rng = one.rng
        if self.visitors and rng.random() < 0.5:
            old = rng.choice(self.visitors[: max(1, len(self.visitors) - self.visitors_per_day)])
            one.enter(_normal(rng, 10, 90, 8, 16), IN, old.badge)
        for _ in range(rng.randint(0, 2)):
            one.enter(_normal(rng, 9, 90, 7, 17), IN, f"NV-{rng.randrange(9000, 9999):04d}")
        if rng.random() < 0.3:
            one.out.append(Scan(one.at(_normal(rng, 12, 180, 7, 18)), IN, "entry", NO_BADGE))
        if rng.random() < 0.6:
            person = rng.choice(self.staff)
            mine = [s for s in one.out if isinstance(s, Scan) and s.badge == person.badge]
            if mine and mine[0].direction == "entry" and len(mine) > 1:
                at = mine[0].at + (mine[1].at - mine[0].at) / 2
                one.enter(at, IN, person.badge)
        if rng.random() < 0.3:
            one.out.append(Incident(one.at(_normal(rng, 8.2, 20, 7.5, 9)), IN, "tailgating"))

    def _incident(self, one: _Day, *, lockdown: bool) -> None:
        """A thermometer at the main entrance that fails for 40 minutes, or a 20-minute lockdown
        drill (entries in it are refused and tried again after it)."""
        if not lockdown:
            start = one.at(_normal(one.rng, 10, 20, 9.5, 10.5))
            one.out.append(Incident(start, IN, "thermometer", ok=False, detail=_FAULT))
            one.out.append(
                Incident(start + timedelta(minutes=40), IN, "thermometer", ok=True, detail="ok")
            )
            return
        start, end = one.at(13 * 60), one.at(13 * 60 + 20)  # as people come back from lunch
        one.out.append(Incident(start, IN, "lockdown", ok=False, detail="diễn tập"))
        one.out.append(Incident(end, IN, "lockdown", ok=True))
        refused = [
            s
            for s in one.out
            if isinstance(s, Scan) and s.direction == "entry" and s.door != MEETING
        ]
        for scan in refused:
            if start <= scan.at < end:
                one.enter(end + timedelta(minutes=one.rng.uniform(1, 8)), scan.door, scan.badge)


def _working_day(day: date) -> date:
    """``day``, or the Monday after it."""
    return day + timedelta(days=(7 - day.weekday()) % 7 if day.weekday() >= 5 else 0)
