import pytest

from bot.core.rooms import normalise_room


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
