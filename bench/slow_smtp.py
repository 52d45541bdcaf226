"""aiosmtpd handler for bench/run.sh BENCH_NOTIFIERS=1: accepts every mail
after one second, keeping nothing (a slow mail relay)."""
import asyncio


class SlowSink:
    @classmethod
    def from_cli(cls, parser, *args):
        return cls()

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(1)
        return "250 OK"
