from bot.core.privacy import mask_name, mask_openid, mask_phone, mask_room, redact_text


def test_masks_hide_the_identifying_part():
    assert mask_phone("13812345678") == "138****5678"
    assert mask_name("王小明") == "王**"
    assert mask_openid("oAbCdEfGhIjKlMnOp123") == "oAbC***p123"
    assert mask_room("3栋2单元501") == "3栋2单元***"
    assert redact_text("我的电话13812345678，房号501") == "我的电话138****5678，房号501"
    assert "12345678" not in redact_text("call 13912345678 now")


def test_free_text_loses_every_kind_of_number_that_identifies_someone():
    cases = {
        "电话 138 1234 5678": "电话 138****5678",
        "电话138-1234-5678": "电话138****5678",
        "+86 13812345678": "+86 138****5678",
        "座机010-12345678": "座机010-****5678",
        "打0755 1234567找我": "打0755 ****4567找我",
        "(021)12345678": "(021)****5678",
        "身份证11010519491231002X": "身份证110***********002X",
        "身份证号110105194912310021。": "身份证号110***********0021。",
    }
    for text, masked in cases.items():
        assert redact_text(text) == masked, text
    for secret in ("12345678", "1234567", "19491231"):
        assert all(secret not in redact_text(text) for text in cases)


def test_numbers_that_identify_nobody_stay():
    for text in ("工单BX20261125-0001已受理", "3栋2单元501", "费用2.5元/平方米", "2026-11-25 09:30", "第12345期"):
        assert redact_text(text) == text
