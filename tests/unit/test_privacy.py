from bot.core.privacy import mask_name, mask_openid, mask_phone, mask_room, redact_text


def test_masks_hide_the_identifying_part():
    assert mask_phone("13812345678") == "138****5678"
    assert mask_name("王小明") == "王**"
    assert mask_openid("oAbCdEfGhIjKlMnOp123") == "oAbC***p123"
    assert mask_room("3栋2单元501") == "3栋2单元***"
    assert redact_text("我的电话13812345678，房号501") == "我的电话138****5678，房号501"
    assert "12345678" not in redact_text("call 13912345678 now")
