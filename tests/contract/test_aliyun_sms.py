"""Our Aliyun SMS signer and sandbox against code and figures nobody here wrote: Aliyun's
documented signature examples, and `aliyunsdkcore` (Aliyun's Python SDK core) signing a
`SendSms` call that our sandbox must accept."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from aliyunsdkcore.auth.composer.rpc_signature_composer import get_signed_url

from domain.buyer_messages import TEMPLATES, BuyerStage
from domain.contacts import Language
from peers.aliyun_sms import AliyunSmsClient, rpc_signature, string_to_sign
from sandbox.sms import create_sms_app

pytestmark = pytest.mark.contract

# Aliyun's SMS documentation: the signature of this SendSms request with secret "testSecret".
DOCUMENTED_SEND_SMS = {
    "AccessKeyId": "testId",
    "Action": "SendSms",
    "Format": "XML",
    "OutId": "123",
    "PhoneNumbers": "15300000001",
    "RegionId": "cn-hangzhou",
    "SignName": "阿里云短信测试专用",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
    "SignatureVersion": "1.0",
    "TemplateCode": "SMS_71390007",
    "TemplateParam": '{"customer":"test"}',
    "Timestamp": "2017-07-12T02:42:19Z",
    "Version": "2017-05-25",
}
# Aliyun's RPC signature documentation (ECS DescribeRegions, secret "testsecret").
DOCUMENTED_DESCRIBE_REGIONS = {
    "Timestamp": "2016-02-23T12:46:24Z",
    "Format": "XML",
    "AccessKeyId": "testid",
    "Action": "DescribeRegions",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
    "Version": "2014-05-26",
    "SignatureVersion": "1.0",
}


def test_our_signer_gives_the_documented_send_sms_signature() -> None:
    assert rpc_signature("testSecret", "GET", DOCUMENTED_SEND_SMS) == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


def test_our_signer_gives_the_documented_rpc_signature() -> None:
    assert string_to_sign("GET", DOCUMENTED_DESCRIBE_REGIONS) == (
        "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML"
        "%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"
        "%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z"
        "%26Version%3D2014-05-26"
    )
    assert rpc_signature("testsecret", "GET", DOCUMENTED_DESCRIBE_REGIONS) == (
        "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
    )


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_our_signer_agrees_with_aliyunsdkcore(method: str) -> None:
    params = {
        "Action": "SendSms",
        "Version": "2017-05-25",
        "RegionId": "cn-hangzhou",
        "PhoneNumbers": "13812345678",
        "SignName": "卡密退款",
        "TemplateCode": "SMS_KAMI_ARRIVED_ZH",
        "TemplateParam": '{"amount": "50.00元", "refund": "rf_1 ~*+ x", "route": "原支付账户"}',
        "OutId": "rf_1-2-sms",
    }
    url, _ = get_signed_url(dict(params), "key-id", "key secret", "JSON", method, {})
    signed = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    assert rpc_signature("key secret", method, signed) == signed["Signature"]


async def test_the_sandbox_accepts_a_call_aliyunsdkcore_signed_and_refuses_a_forged_one() -> None:
    template = TEMPLATES[(BuyerStage.MONEY_ARRIVED, Language.ZH)].sms
    app = create_sms_app(
        access_key_id="key-id",
        access_key_secret="key secret",
        templates={template.code: template.text},
        fault_delay=0.1,
    )
    params = {
        "Action": "SendSms",
        "Version": "2017-05-25",
        "RegionId": "cn-hangzhou",
        "PhoneNumbers": "13812345678",
        "SignName": "卡密退款",
        "TemplateCode": template.code,
        "TemplateParam": '{"amount":"50.00元","refund":"rf_1","route":"原支付账户"}',
    }
    url, _ = get_signed_url(dict(params), "key-id", "key secret", "JSON", "GET", {})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sms"
    ) as http:
        accepted = (await http.get(url)).json()
        assert accepted["Code"] == "OK", accepted
        forged = url.replace("13812345678", "13900000000")
        refused = await http.get(forged)
        assert refused.json()["Code"] == "SignatureDoesNotMatch"
        [message] = (await http.get("/sandbox/messages")).json()["messages"]
    assert message["text"] == "【卡密退款】您的退款50.00元已退回原支付账户（单号rf_1），请查收。"


async def test_our_client_and_the_sandbox_agree_and_faults_come_back_as_retryable() -> None:
    template = TEMPLATES[(BuyerStage.SUBMITTED, Language.EN)].sms
    app = create_sms_app(
        access_key_id="key-id",
        access_key_secret="s3cret",
        templates={template.code: template.text},
        fault_delay=0.1,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sms"
    ) as http:
        client = AliyunSmsClient(
            http,
            url="http://sms/",
            access_key_id="key-id",
            access_key_secret="s3cret",
            sign_name="Kami",
        )
        variables = {"amount": "50.00 CNY", "refund": "rf_2", "link": "https://x.example/r/rf_2"}
        await http.post("/sandbox/faults", json={"mode": "rate_limit", "count": 1})
        with pytest.raises(Exception) as limited:
            await client.send("13812345678", template.code, variables, out_id="o1")
        assert "isv.BUSINESS_LIMIT_CONTROL" in str(limited.value)
        assert getattr(limited.value, "permanent", None) is False
        assert "138****5678" in str(limited.value) and "13812345678" not in str(limited.value)
        sent = await client.send("13812345678", template.code, variables, out_id="o1")
        assert sent.biz_id
        with pytest.raises(Exception) as unknown:
            await client.send("13812345678", "SMS_NOT_REGISTERED", variables, out_id="o2")
        assert getattr(unknown.value, "permanent", None) is True
