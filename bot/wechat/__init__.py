"""WeChat official account (服务号): message push protocol and API client."""
