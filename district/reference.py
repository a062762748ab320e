"""The reference district: Qingdao's Shinan district (市南区) at the scale DESIGN.md gives, built through commands.

Everything here goes through the ordinary registry commands, so the reference
district is event-sourced like any later change to it, and a review can replay
it. The commands come out in a fixed order, parents before children, and are
the same on every call for the same ``at`` (the only randomness is a
``random.Random(20211231)`` made afresh per call).

What comes from the source (DESIGN.md, after the 2021 reports on Shinan's grid
governance) and what is generated:

- From the source: the district and its ten streets; the six communities it
  names and the street each sits under (永嘉路 under 八大湖, 仙游路 under 金门路,
  仰口路 under 湛山, 辛家庄 under 珠海路, 广州路 under 云南路, 西藏路 under 八大峡);
  the figures: 505 base grids, 68 dedicated grids, 505 full-time, 453
  professional and 2,648 part-time grid workers; grids of about 500
  households / 1,000 people; grid names numbered within their community
  (永嘉路社区004网格); the kinds of work (manhole and drain covers, street
  lights, heating-pipe covers, kitchen fires, neighbour disputes, legal aid,
  counselling, visits to the elderly).
- Generated: the other 49 communities (real road and place names of the
  district, but which community exists under which street is illustrative,
  not an official list); the 68 dedicated grids' names (well-known places of
  the district, placed under a street that is plausible, not checked); how
  the base grids are spread over communities; every grid's households,
  population and elderly; worker names (from surname and given-name lists);
  which grids professional and part-time workers cover; the departments'
  exact names; the category catalogue, its default units and SLA classes.
- The holiday calendar (version 1) is mainland China's public holidays and
  make-up working days (调休) for 2021–2026 as the State Council's yearly
  notices published them, written out by hand. It is reference data: when a
  day turns out wrong, or a new year is announced, publish calendar version 2
  with a ``registry.calendar`` command; never edit this table in place, since
  cases record the calendar version their deadlines were computed with.

Codes: streets ``SN01``…``SN10`` in the order DESIGN.md lists them; communities
``SN08-C01``; base grids ``SN08-C01-G004``; dedicated grids ``SN07-C02-Z01``
(Z for 专属); departments ``D-CG``…; workers ``W00001`` (full-time, one per base
grid in grid order, each its grid's leader), ``P00001`` (professional),
``V00001`` (part-time, grid by grid).
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import TYPE_CHECKING

from domain import commands as c
from domain.base import ActorRef, Role
from domain.errors import AlreadyExists
from domain.registry import GridKind, OrgKind, WorkerKind, category_id, org_unit_id, worker_id
from domain.sla import SlaClass, default_policy_rules

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from datetime import datetime
    from uuid import UUID

    from adapters.service import Gridcase
    from domain.commands import AnyCommand

#: Every reference command is issued by this actor.
LOADER = ActorRef(id="reference-loader", role=Role.SYSTEM)
DISTRICT = "SN"
SEED = 20211231
#: Commands saved per transaction. Kept small because of a PostgreSQL hang: psycopg 3.3.9 (Python and
#: C implementations alike) can leave the end of a pipelined ``executemany`` unsent when it syncs, and
#: the event store's recorder then waits forever for results (seen with 2,000–4,000 events, several
#: hundred KB, in one transaction). 250 commands (~110 KB of rows) fit in a socket buffer.
CHUNK = 250
#: The day every reference assignment starts.
ASSIGNMENTS_START = date(2021, 1, 1)

BASE_GRIDS = 505
DEDICATED_GRIDS = 68
FULL_TIME = 505
PROFESSIONAL = 453
PART_TIME = 2_648

#: (Chinese name without 街道, English label without "Street"), in DESIGN.md's order: SN01…SN10.
STREETS: tuple[tuple[str, str], ...] = (
    ("八大峡", "Badaxia"),
    ("云南路", "Yunnan Road"),
    ("中山路", "Zhongshan Road"),
    ("江苏路", "Jiangsu Road"),
    ("八大关", "Badaguan"),
    ("湛山", "Zhanshan"),
    ("香港中路", "Hong Kong Middle Road"),
    ("八大湖", "Badahu"),
    ("金门路", "Jinmen Road"),
    ("珠海路", "Zhuhai Road"),
)

#: The communities the source names, and the street each belongs to.
SOURCE_COMMUNITIES: dict[str, str] = {
    "永嘉路": "八大湖",
    "仙游路": "金门路",
    "仰口路": "湛山",
    "辛家庄": "珠海路",
    "广州路": "云南路",
    "西藏路": "八大峡",
}

#: Communities per street (without 社区), a source-named one first where there is one (so it is C01).
COMMUNITIES: dict[str, tuple[tuple[str, str], ...]] = {
    "八大峡": (("西藏路", "Xizang Road"), ("团岛", "Tuandao"), ("四川路", "Sichuan Road"),
            ("贵州路", "Guizhou Road"), ("瞿塘峡路", "Qutangxia Road")),
    "云南路": (("广州路", "Guangzhou Road"), ("单县路", "Shanxian Road"), ("费县路", "Feixian Road"),
            ("巨野路", "Juye Road"), ("滋阳路", "Ziyang Road"), ("西康路", "Xikang Road")),
    "中山路": (("河南路", "Henan Road"), ("天津路", "Tianjin Road"), ("湖北路", "Hubei Road"),
            ("肥城路", "Feicheng Road"), ("曲阜路", "Qufu Road")),
    "江苏路": (("大学路", "Daxue Road"), ("鱼山路", "Yushan Road"), ("龙江路", "Longjiang Road"),
            ("信号山", "Xinhaoshan"), ("观海山", "Guanhaishan")),
    "八大关": (("居庸关", "Juyongguan"), ("汇泉", "Huiquan"), ("太平角", "Taipingjiao"),
            ("正阳关", "Zhengyangguan"), ("嘉峪关", "Jiayuguan")),
    "湛山": (("仰口路", "Yangkou Road"), ("湛山", "Zhanshan"), ("山海关路", "Shanhaiguan Road"),
           ("太平山", "Taipingshan"), ("东海中路", "Donghai Middle Road")),
    "香港中路": (("漳州路", "Zhangzhou Road"), ("福州南路", "Fuzhou South Road"), ("南京路", "Nanjing Road"),
             ("东海西路", "Donghai West Road"), ("澳门路", "Macao Road"), ("彰化路", "Zhanghua Road")),
    "八大湖": (("永嘉路", "Yongjia Road"), ("延安三路", "Yan'an 3rd Road"), ("闽江路", "Minjiang Road"),
            ("燕儿岛路", "Yan'erdao Road"), ("宁安路", "Ning'an Road"), ("镇江路", "Zhenjiang Road")),
    "金门路": (("仙游路", "Xianyou Road"), ("金门路", "Jinmen Road"), ("江西路", "Jiangxi Road"),
            ("宁德路", "Ningde Road"), ("福清路", "Fuqing Road"), ("厦门路", "Xiamen Road")),
    "珠海路": (("辛家庄", "Xinjiazhuang"), ("麦岛", "Maidao"), ("珠海路", "Zhuhai Road"),
            ("东海东路", "Donghai East Road"), ("山东头", "Shandongtou"), ("海口路", "Haikou Road")),
}  # fmt: skip

#: Dedicated grids per street: (place, English label), each becomes "<place>专属网格".
DEDICATED: dict[str, tuple[tuple[str, str], ...]] = {
    "八大峡": (("西镇商圈", "Xizhen Business District"), ("团岛港区", "Tuandao Port Area"),
            ("八大峡广场", "Badaxia Square"), ("青岛第十六中学", "Qingdao No. 16 Middle School"),
            ("四川路小学", "Sichuan Road Primary School"),
            ("八大峡社区卫生服务中心", "Badaxia Community Health Centre")),
    "云南路": (("云南路商圈", "Yunnan Road Business District"), ("青岛火车站", "Qingdao Railway Station"),
            ("单县路农贸市场", "Shanxian Road Market"), ("广州路小学", "Guangzhou Road Primary School"),
            ("西康路幼儿园", "Xikang Road Kindergarten"),
            ("云南路社区卫生服务中心", "Yunnan Road Community Health Centre"),
            ("滋阳路养老院", "Ziyang Road Care Home")),
    "中山路": (("中山路商圈", "Zhongshan Road Business District"), ("劈柴院", "Pichaiyuan Food Street"),
            ("天主教堂景区", "St. Michael's Cathedral Area"), ("栈桥景区", "Zhanqiao Pier Area"),
            ("青岛市口腔医院", "Qingdao Stomatological Hospital"), ("湖北路小学", "Hubei Road Primary School"),
            ("曲阜路小学", "Qufu Road Primary School")),
    "江苏路": (("青岛大学附属医院", "Affiliated Hospital of Qingdao University"),
            ("中国海洋大学鱼山校区", "Ocean University of China, Yushan Campus"),
            ("江苏路基督教堂景区", "Jiangsu Road Christian Church Area"), ("信号山公园", "Signal Hill Park"),
            ("江苏路小学", "Jiangsu Road Primary School"), ("青岛第三十九中学", "Qingdao No. 39 Middle School"),
            ("大学路商圈", "Daxue Road Business District")),
    "八大关": (("八大关景区", "Badaguan Scenic Area"), ("第二海水浴场", "No. 2 Bathing Beach"),
            ("汇泉广场", "Huiquan Square"), ("中山公园", "Zhongshan Park"), ("天泰体育场", "Tiantai Stadium"),
            ("嘉峪关学校", "Jiayuguan School"), ("青岛疗养院", "Qingdao Sanatorium")),
    "湛山": (("青岛市市立医院东院区", "Qingdao Municipal Hospital, East Campus"),
           ("湛山寺景区", "Zhanshan Temple Area"), ("青岛电视塔", "Qingdao TV Tower"),
           ("湛山小学", "Zhanshan Primary School"), ("青岛实验初级中学", "Qingdao Experimental Junior Middle School"),
           ("东海中路商圈", "Donghai Middle Road Business District"), ("湛山农贸市场", "Zhanshan Market")),
    "香港中路": (("香港中路商圈", "Hong Kong Middle Road Business District"), ("五四广场", "May Fourth Square"),
             ("万象城", "MixC Mall"), ("奥帆中心", "Olympic Sailing Center"),
             ("市南区政务服务中心", "Shinan Government Services Centre"),
             ("青岛实验小学", "Qingdao Experimental Primary School"),
             ("香港中路社区卫生服务中心", "Hong Kong Middle Road Community Health Centre")),
    "八大湖": (("闽江路商圈", "Minjiang Road Business District"),
            ("解放军第九七一医院", "PLA No. 971 Hospital"), ("青岛眼科医院", "Qingdao Eye Hospital"),
            ("台湾路美食街", "Taiwan Road Food Street"), ("延安三路小学", "Yan'an 3rd Road Primary School"),
            ("八大湖中学", "Badahu Middle School")),
    "金门路": (("青岛大学浮山校区", "Qingdao University, Fushan Campus"),
            ("江西路商圈", "Jiangxi Road Business District"), ("青岛第十九中学", "Qingdao No. 19 Middle School"),
            ("金门路小学", "Jinmen Road Primary School"), ("宁夏路软件园", "Ningxia Road Software Park"),
            ("仙游路农贸市场", "Xianyou Road Market"),
            ("金门路社区卫生服务中心", "Jinmen Road Community Health Centre")),
    "珠海路": (("麦岛商圈", "Maidao Business District"), ("东海东路商圈", "Donghai East Road Business District"),
            ("珠海路小学", "Zhuhai Road Primary School"),
            ("青岛第二实验初级中学", "Qingdao No. 2 Experimental Junior Middle School"),
            ("麦岛海洋科技园", "Maidao Marine Science Park"),
            ("辛家庄社区卫生服务中心", "Xinjiazhuang Community Health Centre"),
            ("浮山湾滨海步行道", "Fushan Bay Promenade")),
}  # fmt: skip

#: Departments (职能部门) that cases are referred to: (code, Chinese name, English label).
DEPARTMENTS: tuple[tuple[str, str, str], ...] = (
    ("D-CG", "区城市管理局", "Urban Management Bureau"),
    ("D-SW", "区水务局", "Water Affairs Bureau"),
    ("D-ZJ", "区住房和城乡建设局", "Housing and Urban-Rural Development Bureau"),
    ("D-GA", "市南公安分局", "Shinan Public Security Sub-bureau (police)"),
    ("D-SJ", "区市场监督管理局", "Market Regulation Bureau"),
    ("D-YJ", "区应急管理局", "Emergency Management Bureau"),
    ("D-MZ", "区民政局", "Civil Affairs Bureau"),
    ("D-SF", "区司法局", "Justice Bureau (legal aid)"),
    ("D-GD", "市南供电中心", "Shinan Power Supply Centre"),
    ("D-RQ", "市南燃气服务中心", "Shinan Gas Service Centre"),
    ("D-RL", "市南供热服务中心", "Shinan Heating Service Centre"),
    ("D-WJ", "区卫生健康局", "Health Bureau"),
    ("D-HB", "市南生态环境分局", "Ecology and Environment Sub-bureau"),
    ("D-RS", "区人力资源和社会保障局", "Human Resources and Social Security Bureau"),
)

#: How the 453 professional workers are spread over the departments they come from.
PROFESSIONALS_PER_DEPARTMENT: tuple[tuple[str, int], ...] = (
    ("D-GA", 150),  # community police (社区民警)
    ("D-CG", 110),  # urban-management law enforcement (城管执法)
    ("D-SJ", 70),  # market regulators
    ("D-YJ", 40),  # safety inspectors
    ("D-ZJ", 30),  # housing and construction inspectors
    ("D-MZ", 28),  # social workers
    ("D-SF", 25),  # people's mediators and legal advisers
)

#: Category groups: code → (Chinese, English).
GROUPS: dict[str, tuple[str, str]] = {
    "facility": ("公共设施", "Public facilities"),
    "appearance": ("市容环境", "City appearance"),
    "safety": ("安全隐患", "Safety hazards"),
    "dispute": ("矛盾纠纷", "Disputes"),
    "livelihood": ("民生服务", "Livelihood services"),
}

#: The catalogue: (code, Chinese, English, default unit, SLA class). A: urgent-type safety, B: general, C: complex.
CATEGORIES: tuple[tuple[str, str, str, str, SlaClass], ...] = (
    ("facility.manhole", "井盖", "Manhole cover", "D-CG", "A"),
    ("facility.street-light", "路灯", "Street light", "D-CG", "B"),
    ("facility.drain-cover", "雨水篦子", "Drain cover", "D-CG", "A"),
    ("facility.heating-cover", "供热管井盖", "Heating-pipe cover", "D-RL", "A"),
    ("facility.road", "道路破损", "Damaged road or pavement", "D-CG", "B"),
    ("facility.water-pipe", "供水管道", "Water main or pipe leak", "D-SW", "A"),
    ("facility.power", "供电设施", "Power outage or power equipment", "D-GD", "A"),
    ("facility.elevator", "电梯", "Lift out of order", "D-SJ", "A"),
    ("appearance.garbage", "垃圾", "Garbage not collected", "grid", "B"),
    ("appearance.street-vending", "占道经营", "Street vending on the pavement", "D-CG", "B"),
    ("appearance.flyposting", "小广告", "Flyposting", "grid", "B"),
    ("appearance.illegal-building", "违章建筑", "Illegal construction", "D-CG", "C"),
    ("appearance.parking", "乱停车", "Illegal parking", "D-GA", "B"),
    ("appearance.noise", "噪音扰民", "Noise nuisance", "D-HB", "B"),
    ("safety.gas", "燃气", "Gas leak or gas hazard", "D-RQ", "A"),
    ("safety.kitchen-fire", "厨房用火", "Kitchen fire hazard", "grid", "A"),
    ("safety.fire-lane", "消防通道", "Blocked fire lane", "grid", "A"),
    ("safety.ebike-charging", "电动车充电", "E-bike charged indoors", "grid", "A"),
    ("safety.dangerous-building", "危房", "Dangerous building", "D-ZJ", "A"),
    ("safety.food", "食品安全", "Food safety", "D-SJ", "A"),
    ("dispute.neighbour", "邻里纠纷", "Neighbour dispute", "grid", "C"),
    ("dispute.property", "物业纠纷", "Property-management dispute", "D-ZJ", "C"),
    ("dispute.wages", "劳资纠纷", "Unpaid wages", "D-RS", "C"),
    ("dispute.family", "家庭纠纷", "Family dispute", "grid", "C"),
    ("dispute.consumer", "消费纠纷", "Consumer dispute", "D-SJ", "C"),
    ("livelihood.elderly", "为老服务", "Elderly care", "grid", "B"),
    ("livelihood.legal-aid", "法律援助", "Legal aid", "D-SF", "C"),
    ("livelihood.counselling", "心理咨询", "Counselling", "D-WJ", "C"),
    ("livelihood.hardship", "困难救助", "Hardship assistance", "D-MZ", "C"),
    ("livelihood.heating", "供暖不热", "Home not warm enough in the heating season", "D-RL", "B"),
    ("livelihood.follow-up", "随访", "Follow-up visit the centre assigns", "grid", "B"),
    ("livelihood.disability", "助残服务", "Services for people with disabilities", "D-MZ", "B"),
)

#: Mainland China's public holidays, as announced each year by the State Council's General Office:
#: (holiday, first day off, last day off, make-up working days 调休). Reference data: correct it by
#: publishing a new calendar version, not by editing the published one.
PUBLIC_HOLIDAYS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("2021 元旦 New Year's Day", "2021-01-01", "2021-01-03", ()),
    ("2021 春节 Spring Festival", "2021-02-11", "2021-02-17", ("2021-02-07", "2021-02-20")),
    ("2021 清明节 Qingming", "2021-04-03", "2021-04-05", ()),
    ("2021 劳动节 Labour Day", "2021-05-01", "2021-05-05", ("2021-04-25", "2021-05-08")),
    ("2021 端午节 Dragon Boat", "2021-06-12", "2021-06-14", ()),
    ("2021 中秋节 Mid-Autumn", "2021-09-19", "2021-09-21", ("2021-09-18",)),
    ("2021 国庆节 National Day", "2021-10-01", "2021-10-07", ("2021-09-26", "2021-10-09")),
    ("2022 元旦 New Year's Day", "2022-01-01", "2022-01-03", ()),
    ("2022 春节 Spring Festival", "2022-01-31", "2022-02-06", ("2022-01-29", "2022-01-30")),
    ("2022 清明节 Qingming", "2022-04-03", "2022-04-05", ("2022-04-02",)),
    ("2022 劳动节 Labour Day", "2022-04-30", "2022-05-04", ("2022-04-24", "2022-05-07")),
    ("2022 端午节 Dragon Boat", "2022-06-03", "2022-06-05", ()),
    ("2022 中秋节 Mid-Autumn", "2022-09-10", "2022-09-12", ()),
    ("2022 国庆节 National Day", "2022-10-01", "2022-10-07", ("2022-10-08", "2022-10-09")),
    ("2023 元旦 New Year's Day", "2022-12-31", "2023-01-02", ()),
    ("2023 春节 Spring Festival", "2023-01-21", "2023-01-27", ("2023-01-28", "2023-01-29")),
    ("2023 清明节 Qingming", "2023-04-05", "2023-04-05", ()),
    ("2023 劳动节 Labour Day", "2023-04-29", "2023-05-03", ("2023-04-23", "2023-05-06")),
    ("2023 端午节 Dragon Boat", "2023-06-22", "2023-06-24", ("2023-06-25",)),
    ("2023 中秋节、国庆节 Mid-Autumn and National Day", "2023-09-29", "2023-10-06", ("2023-10-07", "2023-10-08")),
    ("2024 元旦 New Year's Day", "2023-12-30", "2024-01-01", ()),
    ("2024 春节 Spring Festival", "2024-02-10", "2024-02-17", ("2024-02-04", "2024-02-18")),
    ("2024 清明节 Qingming", "2024-04-04", "2024-04-06", ("2024-04-07",)),
    ("2024 劳动节 Labour Day", "2024-05-01", "2024-05-05", ("2024-04-28", "2024-05-11")),
    ("2024 端午节 Dragon Boat", "2024-06-08", "2024-06-10", ()),
    ("2024 中秋节 Mid-Autumn", "2024-09-15", "2024-09-17", ("2024-09-14",)),
    ("2024 国庆节 National Day", "2024-10-01", "2024-10-07", ("2024-09-29", "2024-10-12")),
    ("2025 元旦 New Year's Day", "2025-01-01", "2025-01-01", ()),
    ("2025 春节 Spring Festival", "2025-01-28", "2025-02-04", ("2025-01-26", "2025-02-08")),
    ("2025 清明节 Qingming", "2025-04-04", "2025-04-06", ()),
    ("2025 劳动节 Labour Day", "2025-05-01", "2025-05-05", ("2025-04-27",)),
    ("2025 端午节 Dragon Boat", "2025-05-31", "2025-06-02", ()),
    ("2025 国庆节、中秋节 National Day and Mid-Autumn", "2025-10-01", "2025-10-08", ("2025-09-28", "2025-10-11")),
    ("2026 元旦 New Year's Day", "2026-01-01", "2026-01-03", ("2026-01-04",)),
    ("2026 春节 Spring Festival", "2026-02-15", "2026-02-23", ("2026-02-14", "2026-02-28")),
    ("2026 清明节 Qingming", "2026-04-04", "2026-04-06", ()),
    ("2026 劳动节 Labour Day", "2026-05-01", "2026-05-05", ("2026-05-09",)),
    ("2026 端午节 Dragon Boat", "2026-06-19", "2026-06-21", ()),
    ("2026 中秋节 Mid-Autumn", "2026-09-25", "2026-09-27", ()),
    ("2026 国庆节 National Day", "2026-10-01", "2026-10-07", ("2026-09-20", "2026-10-10")),
)

#: Surnames, the common ones of Shandong repeated so they come up more often.
SURNAMES = "王王王王张张张刘刘刘李李李孙孙杨杨赵赵陈陈徐徐于于高高马马周宋吕姜曲隋董崔郭林袁韩曹邹丁薛毛傅纪綦矫栾修逄"
#: Characters of given names, one or two of them.
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超霞平刚建国海燕红玉兰志华文波"
    "鹏宁琳晓东新春梅婷雪亮斌辉峰青岚欣悦浩宇晨佳怡萍凤秀云丹健成龙飞"
)


def holiday_calendar() -> tuple[tuple[date, ...], tuple[date, ...]]:
    """Calendar version 1: every day off of the public holidays (weekends inside them too) and the make-up days."""
    holidays: list[date] = []
    workdays: list[date] = []
    for _name, first, last, make_up in PUBLIC_HOLIDAYS:
        day, end = date.fromisoformat(first), date.fromisoformat(last)
        while day <= end:
            holidays.append(day)
            day += timedelta(days=1)
        workdays.extend(date.fromisoformat(d) for d in make_up)
    return tuple(sorted(holidays)), tuple(sorted(workdays))


def _person(rng: random.Random) -> str:
    given = "".join(rng.choice(GIVEN) for _ in range(1 if rng.random() < 0.3 else 2))  # noqa: PLR2004
    return rng.choice(SURNAMES) + given


def _spread(rng: random.Random, total: int, bins: int, low: int, high: int) -> list[int]:
    """``total`` split over ``bins`` counts between ``low`` and ``high``, unevenly but reproducibly."""
    counts = [total // bins] * bins
    for i in rng.sample(range(bins), total % bins):
        counts[i] += 1
    for _ in range(bins * 4):
        a, b = rng.randrange(bins), rng.randrange(bins)
        if counts[a] > low and counts[b] < high:
            counts[a] -= 1
            counts[b] += 1
    return counts


def reference_commands(at: datetime) -> Iterator[AnyCommand]:  # noqa: C901, PLR0912, PLR0915
    """The registry commands that build the reference district, parents before children, the same on every call."""
    rng = random.Random(SEED)  # noqa: S311 - reproducible test data, not security
    actor = LOADER

    def unit(
        code: str,
        kind: OrgKind,
        name: str,
        name_en: str,
        parent: str | None,
        grid_kind: GridKind | None = None,
        households: int = 0,
        population: int = 0,
        elderly: int = 0,
    ) -> AnyCommand:
        return c.CreateOrgUnit(
            actor=actor,
            at=at,
            code=code,
            kind=kind,
            name=name,
            name_en=name_en,
            parent=parent,
            grid_kind=grid_kind,
            households=households,
            population=population,
            elderly=elderly,
        )

    yield unit(DISTRICT, OrgKind.DISTRICT, "市南区", "Shinan District", None)
    for n, (name, name_en) in enumerate(STREETS, start=1):
        yield unit(f"{DISTRICT}{n:02d}", OrgKind.STREET, f"{name}街道", f"{name_en} Street", DISTRICT)
    for code, name, name_en in DEPARTMENTS:
        yield unit(code, OrgKind.DEPARTMENT, name, name_en, DISTRICT)

    # Communities, then base grids spread over them.
    communities: list[tuple[str, str, str, str]] = []  # code, street code, name, English label
    for n, (street, _en) in enumerate(STREETS, start=1):
        street_code = f"{DISTRICT}{n:02d}"
        for m, (name, name_en) in enumerate(COMMUNITIES[street], start=1):
            code = f"{street_code}-C{m:02d}"
            communities.append((code, street_code, name, name_en))
            yield unit(code, OrgKind.COMMUNITY, f"{name}社区", f"{name_en} Community", street_code)

    base_grids: list[str] = []
    grids_of_street: dict[str, list[str]] = {}
    for (code, street_code, name, name_en), count in zip(
        communities, _spread(rng, BASE_GRIDS, len(communities), 6, 13), strict=True
    ):
        for g in range(1, count + 1):
            grid = f"{code}-G{g:03d}"
            households = rng.randint(400, 600)
            population = min(1_250, max(800, round(households * rng.uniform(1.8, 2.1))))
            elderly = rng.randint(-(-population * 10 // 100), population * 35 // 100)  # 10%–35%
            base_grids.append(grid)
            grids_of_street.setdefault(street_code, []).append(grid)
            yield unit(grid, OrgKind.GRID, f"{name}社区{g:03d}网格", f"{name_en} Community Grid {g:03d}", code,
                       GridKind.BASE, households, population, elderly)  # fmt: skip

    dedicated_grids: list[str] = []
    numbered: dict[str, int] = {}
    for n, (street, _en) in enumerate(STREETS, start=1):
        street_code = f"{DISTRICT}{n:02d}"
        own = [community for community in communities if community[1] == street_code]
        for place, place_en in DEDICATED[street]:
            community = rng.choice(own)[0]
            numbered[community] = numbered.get(community, 0) + 1
            grid = f"{community}-Z{numbered[community]:02d}"
            households = rng.randint(10, 150)
            population = households * 2 + rng.randint(0, 60)
            elderly = rng.randint(population * 5 // 100, population * 25 // 100)
            dedicated_grids.append(grid)
            grids_of_street[street_code].append(grid)
            yield unit(grid, OrgKind.GRID, f"{place}专属网格", f"{place_en} Dedicated Grid", community,
                       GridKind.DEDICATED, households, population, elderly)  # fmt: skip

    for code, name, name_en, default_unit, sla_class in CATEGORIES:
        group = code.split(".", 1)[0]
        group_name, group_name_en = GROUPS[group]
        yield c.DefineCategory(actor=actor, at=at, code=code, group=group, group_name=group_name,
                               group_name_en=group_name_en, name=name, name_en=name_en, default_unit=default_unit,
                               sla_class=sla_class)  # fmt: skip
    yield c.PublishSlaPolicy(actor=actor, at=at, version=1, rules=default_policy_rules())
    holidays, workdays = holiday_calendar()
    yield c.PublishCalendar(actor=actor, at=at, version=1, holidays=holidays, workdays=workdays)

    def worker(code: str, kind: WorkerKind, department: str | None = None) -> AnyCommand:
        return c.RegisterWorker(actor=actor, at=at, code=code, name=_person(rng), kind=kind, department=department)

    def assign(code: str, grid: str) -> AnyCommand:
        return c.AssignWorker(actor=actor, at=at, worker=code, grid=grid, start=ASSIGNMENTS_START)

    # One full-time worker per base grid, who also leads it.
    for n, grid in enumerate(base_grids, start=1):
        code = f"W{n:05d}"
        yield worker(code, WorkerKind.FULL_TIME)
        yield assign(code, grid)
        yield c.AppointGridLeader(actor=actor, at=at, grid=grid, worker=code)

    # Professional workers: the first 68 cover one dedicated grid each, so none is left without one;
    # each covers one or two grids (base or dedicated) of a single street.
    departments = [code for code, count in PROFESSIONALS_PER_DEPARTMENT for _ in range(count)]
    rng.shuffle(departments)
    streets = sorted(grids_of_street)
    for n, department in enumerate(departments, start=1):
        code = f"P{n:05d}"
        if n <= len(dedicated_grids):
            first = dedicated_grids[n - 1]
            pool = grids_of_street[first[: len(DISTRICT) + 2]]
        else:
            pool = grids_of_street[rng.choice(streets)]
            first = rng.choice(pool)
        grids = [first]
        if rng.random() < 0.5:  # noqa: PLR2004
            grids.append(rng.choice([g for g in pool if g != first]))
        yield worker(code, WorkerKind.PROFESSIONAL, department)
        for grid in grids:
            yield assign(code, grid)

    # Part-time workers (building leaders, volunteers, property security): five or six per base grid.
    n = 0
    for grid, count in zip(base_grids, _spread(rng, PART_TIME, len(base_grids), 5, 6), strict=True):
        for _ in range(count):
            n += 1
            code = f"V{n:05d}"
            yield worker(code, WorkerKind.PART_TIME)
            yield assign(code, grid)

    if (len(base_grids), len(dedicated_grids), len(departments), n) != (
        BASE_GRIDS,
        DEDICATED_GRIDS,
        PROFESSIONAL,
        PART_TIME,
    ):  # pragma: no cover - guards the tables above
        msg = "the reference tables no longer give DESIGN.md's figures"
        raise AssertionError(msg)


def reference_figures(commands: Sequence[AnyCommand]) -> dict[str, int]:
    """What a list of reference commands sets up: units, workers, categories, households and population."""
    figures = dict.fromkeys(
        ("streets", "communities", "base_grids", "dedicated_grids", "departments", "full_time", "professional",
         "part_time", "categories", "households", "population"),
        0,
    )  # fmt: skip
    for command in commands:
        if isinstance(command, c.CreateOrgUnit):
            if command.kind is OrgKind.GRID:
                figures[f"{command.grid_kind}_grids"] += 1
                figures["households"] += command.households
                figures["population"] += command.population
            elif command.kind is not OrgKind.DISTRICT:
                figures[{"street": "streets", "community": "communities"}.get(command.kind, "departments")] += 1
        elif isinstance(command, c.RegisterWorker):
            figures[command.kind.value] += 1
        elif isinstance(command, c.DefineCategory):
            figures["categories"] += 1
    return figures


def _created_id(command: AnyCommand) -> UUID | None:
    """The id of the aggregate a command creates, for commands that create one."""
    if isinstance(command, c.CreateOrgUnit):
        return org_unit_id(command.code)
    if isinstance(command, c.RegisterWorker):
        return worker_id(command.code)
    if isinstance(command, c.DefineCategory):
        return category_id(command.code)
    return None


def _last_notification_id(app: Gridcase) -> int:
    return int(app.store.recorder.max_notification_id() or 0)


def _chunks_loaded(app: Gridcase, chunks: Sequence[Sequence[AnyCommand]]) -> int:
    """How many leading chunks are already in the store (each chunk is one transaction, saved in order)."""

    def saved(chunk: Sequence[AnyCommand]) -> bool:
        # Every chunk creates something; the last thing it creates exists only if the chunk was committed.
        return app.store.exists(next(i for i in map(_created_id, reversed(chunk)) if i is not None))

    if not app.store.exists(org_unit_id(DISTRICT)):
        return 0
    if saved(chunks[-1]):
        return len(chunks)
    index = next(index for index, chunk in enumerate(chunks) if not saved(chunk))
    if index == 0:
        # The district is there but this loader did not make it: never load on top of someone else's.
        raise AlreadyExists("district", DISTRICT, command="reference.load")
    return index


def load_reference_district(
    app: Gridcase, at: datetime, progress: Callable[[int, int], None] | None = None
) -> dict[str, int]:
    """Load the reference district unless it is there already; return its figures and the events written.

    The commands are saved in chunks of :data:`CHUNK`, one transaction each, in
    order, and ``progress(done, total)`` is called after each chunk is saved.
    Loading is idempotent:

    - district ``SN`` absent: everything is loaded; ``skipped`` is 0.
    - the whole reference district present: nothing is written and ``progress``
      is not called; ``skipped`` is 1, ``events`` 0.
    - an earlier load stopped part-way (a crash between chunks): the chunks
      already saved are recognised (the last unit, worker or category each one
      creates exists) and the load resumes with the next one; ``resumed`` is 1.
      Resumed commands carry the new ``at``.
    - district ``SN`` present but not made by this loader: ``AlreadyExists`` is
      raised and nothing is written.

    The figures (streets, communities, base_grids, dedicated_grids, departments,
    full_time, professional, part_time, categories, and households and
    population summed over all grids, base and dedicated) describe the
    reference district, whatever this call wrote. ``events`` is how far the
    notification log advanced during the call: events written by other
    processes meanwhile are counted too.
    """
    commands = list(reference_commands(at))
    chunks = [commands[i : i + CHUNK] for i in range(0, len(commands), CHUNK)]
    figures = reference_figures(commands)
    loaded = _chunks_loaded(app, chunks)
    if loaded == len(chunks):
        return {**figures, "events": 0, "skipped": 1, "resumed": 0}
    before = _last_notification_id(app)
    done = sum(len(chunk) for chunk in chunks[:loaded])
    for chunk in chunks[loaded:]:
        with app.batch():
            for command in chunk:
                app.handle(command)
        done += len(chunk)
        if progress is not None:
            progress(done, len(commands))
    return {**figures, "events": _last_notification_id(app) - before, "skipped": 0, "resumed": int(loaded > 0)}
