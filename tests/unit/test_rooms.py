import pytest

from bot.core.rooms import corrected_room, normalise_room


@pytest.mark.parametrize("text,expected", [
    ("3栋2单元501", "3栋2单元501"),
    ("3幢2单元501室", "3栋2单元501"),
    ("3号楼2单元501", "3栋2单元501"),
    ("7号楼1202", "7栋1202"),
    ("A座1803", "A座1803"),
    ("b座 1803", "B座1803"),
    ("5-1-302", "5栋1单元302"),
    ("5#1-302", "5栋1单元302"),
    ("5-302", "5栋302"),
    ("三栋二单元501", "3栋2单元501"),
    ("十二栋3单元1102室", "12栋3单元1102"),
    ("３栋２单元５０１", "3栋2单元501"),
    ("我住在 3 栋 2 单元 501，厨房漏水", "3栋2单元501"),
])
def test_room_forms_are_normalised(text, expected):
    assert normalise_room(text) == expected


@pytest.mark.parametrize("text", ["", None, "501", "厨房漏水", "138-1234-5678", "2026-11-25", "😀😀", "room 501"])
def test_non_rooms_are_not_rooms(text):
    assert normalise_room(text) is None


@pytest.mark.parametrize("text,expected", [
    ("3#2-501", "3栋2单元501"),
    ("4-3-603", "4栋3单元603"),
    ("7号楼一二零三", "7栋1203"),
    ("3栋二单元五零一", "3栋2单元501"),
    ("１２栋３单元１１０２", "12栋3单元1102"),
    ("3座2单元501", "3栋2单元501"),
    ("3号楼2单元5楼501", "3栋2单元501"),
    ("3栋2单元5层501室", "3栋2单元501"),
])
def test_odd_forms_normalise_to_the_same_room(text, expected):
    assert normalise_room(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("3栋2单元501 哦不对 是502", "3栋2单元502"),
    ("3栋2单元501 不对不对 是4栋1单元602", "4栋1单元602"),
    ("5栋1单元302室 错了应该是301", "5栋1单元301"),
    ("3栋2单元501，打错了，是3栋2单元1501", "3栋2单元1501"),
    ("不是3栋501 是3栋502", "3栋502"),
    # A number the resident rules out is never taken, and words that only look like a
    # correction change nothing.
    ("3栋2单元501 不是502", "3栋2单元501"),
    ("12栋3单元1102 我不是说1101", "12栋3单元1102"),
    ("我家3栋2单元501 门不是关不上了", "3栋2单元501"),
])
def test_a_correction_inside_one_message_takes_the_corrected_room(text, expected):
    assert normalise_room(text) == expected


@pytest.mark.parametrize("text,previous,expected", [
    ("不对 是1202", "7栋1201", "7栋1202"),
    ("不是1201 是1202", "7栋1201", "7栋1202"),
    ("错了 应该是3栋2单元502", "3栋2单元501", "3栋2单元502"),
    ("明天上午", "7栋1201", None),
    ("不对 是1202", None, None),
])
def test_a_later_correction_keeps_the_building(text, previous, expected):
    assert corrected_room(text, previous) == expected
