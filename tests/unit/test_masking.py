"""The free-text masker (domain.masking): phones and ID numbers in Chinese and English text, no false positives."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from domain.masking import id_check_digit, mask_personal_text

digits = st.text(alphabet="0123456789", min_size=1, max_size=1)
separator = st.sampled_from(["", " ", "-"])
#: Words of Chinese and English text, without digits, '@' or a Latin letter at their ends (a phone glued to a
#: Latin letter is taken for a code and left alone, see domain.masking).
chinese = st.text(alphabet="路灯坏了请尽快处理电话联系我身份证号小区门口，。：、！（）", min_size=0, max_size=12)
english = st.lists(
    st.sampled_from(["call", "me", "on", "please", "the", "light", "is", "out", "ID", "tel:"]), max_size=5
)


@st.composite
def words(draw: st.DrawFn) -> str:
    """A stretch of Chinese or English text, starting and ending with a space or a Chinese character."""
    if draw(st.booleans()):
        return f" {draw(chinese)} "
    return " " + " ".join(draw(english)) + " "


@st.composite
def mobiles(draw: st.DrawFn) -> tuple[str, str]:
    """A mobile number as typed, and its 11 digits."""
    number = "1" + draw(st.sampled_from("3456789")) + "".join(draw(st.lists(digits, min_size=9, max_size=9)))
    sep = draw(separator)
    typed = f"{number[:3]}{sep}{number[3:7]}{sep}{number[7:]}"
    prefix = draw(st.sampled_from(["", "+86", "+86 ", "+86-", "86", "86 ", "0086", "0086-"]))
    return prefix + typed, number


@st.composite
def fixed_lines(draw: st.DrawFn) -> tuple[str, str]:
    """A fixed-line number with its area code as typed, and its local digits."""
    area = draw(st.sampled_from(["10", "21", "29", "532", "755", "371", "898"]))
    local = draw(st.sampled_from("23456789")) + "".join(draw(st.lists(digits, min_size=6, max_size=7)))
    sep = draw(separator)
    form = draw(st.sampled_from(["0{a}{s}{l}", "({0}{a}){l}", "（0{a}）{s}{l}", "+86 {a} {l}", "0{a}{s}{l1}{s}{l2}"]))
    typed = form.replace("{0}", "0").format(a=area, s=sep, l=local, l1=local[:-4], l2=local[-4:])
    return typed, area + local


@st.composite
def id_numbers(draw: st.DrawFn, *, valid: bool = True) -> str:
    """An 18-character ID number with a right (or, if not ``valid``, a wrong) check digit."""
    region = draw(st.sampled_from("123456789")) + "".join(draw(st.lists(digits, min_size=5, max_size=5)))
    born = draw(st.dates(min_value=date(1900, 1, 1), max_value=date(2025, 12, 31))).strftime("%Y%m%d")
    first17 = region + born + "".join(draw(st.lists(digits, min_size=3, max_size=3)))
    right = id_check_digit(first17)
    if valid:
        return first17 + (right.lower() if right == "X" and draw(st.booleans()) else right)
    return first17 + draw(st.sampled_from([c for c in "0123456789" if c != right]))


@st.composite
def harmless(draw: st.DrawFn) -> str:
    """Something that looks like digits but is not personal: a case number, ref, date, time, grid code, amount."""
    day = date(2021, 1, 1) + timedelta(days=draw(st.integers(0, 3000)))
    serial = draw(st.integers(1, 999_999))
    return draw(
        st.sampled_from(
            [
                f"SN-{day:%Y%m%d}-{serial:06d}",
                f"SF311-{draw(st.integers(1_000_000, 99_999_999))}",
                f"{day:%Y-%m-%d}",
                f"{day:%Y%m%d}",
                f"{day:%Y-%m-%d} {draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}",
                f"SN{draw(st.integers(1, 99)):02d}-C{draw(st.integers(1, 99)):02d}-G{draw(st.integers(1, 999)):03d}",
                f"¥{draw(st.integers(0, 10**9)):,}.{draw(st.integers(0, 99)):02d}",
                draw(id_numbers(valid=False)),
            ]
        )
    )


@given(st.lists(st.tuples(words(), st.one_of(mobiles(), fixed_lines())), min_size=1, max_size=4), words())
def test_phones_in_text_are_always_masked(pieces: list[tuple[str, tuple[str, str]]], end: str) -> None:
    text = "".join(w + typed for w, (typed, _) in pieces) + end
    masked = mask_personal_text(text)
    for _, (typed, number) in pieces:
        assert typed not in masked
        assert number not in masked
    assert masked.count("*") >= 3 * len(pieces)


@given(st.lists(st.tuples(words(), id_numbers()), min_size=1, max_size=3), words())
def test_valid_id_numbers_in_text_are_always_masked(pieces: list[tuple[str, str]], end: str) -> None:
    text = "".join(w + number for w, number in pieces) + end
    masked = mask_personal_text(text)
    for _, number in pieces:
        assert number not in masked
        assert f"{number[:4]}**********{number[-4:]}" in masked


@given(st.lists(st.tuples(words(), harmless()), min_size=1, max_size=4), words())
def test_case_numbers_dates_grid_codes_and_wrong_ids_are_never_changed(pieces: list[tuple[str, str]], end: str) -> None:
    text = "".join(w + item for w, item in pieces) + end
    assert mask_personal_text(text) == text


@given(
    st.lists(
        st.one_of(words(), mobiles().map(lambda m: m[0]), fixed_lines().map(lambda f: f[0]), id_numbers(), harmless()),
        max_size=6,
    )
)
def test_masking_is_idempotent(pieces: list[str]) -> None:
    once = mask_personal_text(" ".join(pieces))
    assert mask_personal_text(once) == once


@given(st.text())
def test_arbitrary_text_is_idempotent(text: str) -> None:
    once = mask_personal_text(text)
    assert mask_personal_text(once) == once


@given(st.text(alphabet=st.characters(exclude_characters="0123456789@")))
def test_text_without_digits_or_at_comes_back_unchanged(text: str) -> None:
    assert mask_personal_text(text) is text


def test_e_mail_addresses_are_masked() -> None:
    assert mask_personal_text("请回复 wang.wei@example.com 谢谢") == "请回复 w***@example.com 谢谢"
    assert mask_personal_text("write to a@b.cn.") == "write to a***@b.cn."


def test_the_forms_people_type() -> None:
    examples = {
        "电话13912345678": "电话139****5678",
        "+86 139 1234 5678": "+86 139 **** 5678",
        "0532-88886666": "0532-****6666",
        "(0532)88886666": "(0532)****6666",
        "（0532）8888-6666": "（0532）****-6666",
        "053288886666": "0532****6666",
        "身份证11010519491231002X。": "身份证1101**********002X。",
        "身份证11010519491231002x": "身份证1101**********002x",
    }
    for text, masked in examples.items():
        assert mask_personal_text(text) == masked


def test_a_wrong_check_digit_is_not_an_id_number() -> None:
    assert mask_personal_text("编号110105194912310021") == "编号110105194912310021"
