"""The Python calculator server (`python -m calculator.server`).

Every answer says who computed it (ServedBy); every call is logged as ``Add(2,3) = 5``, with the
request's correlation id stamped by the agent's log handler. Divide by zero answers
INVALID_ARGUMENT "division by zero" and logs a warning.
"""

from __future__ import annotations

import logging

import grpc

from calculator.contract import GRPC_SERVICE
from calculator.numbers import call_text, compute, fmt
from calculator.settings import Settings
from calculator.v1 import calculator_pb2, calculator_pb2_grpc
from runtime.agent import Agent
from runtime.identity import Identity
from runtime.services.main import run

log = logging.getLogger("calculator.server")

LANGUAGE = "python"


class Calculator(calculator_pb2_grpc.CalculatorServiceServicer):
    """The four operations, answered by one instance.

    Example:
        >>> calc = Calculator(Identity("calculator", "calculator-1"))
        >>> calc.served_by.instance_id
        'calculator-1'
    """

    def __init__(self, identity: Identity, settings: Settings | None = None) -> None:
        self.settings = settings or Settings(identity.instance_id, broker_address="")
        self.served_by = calculator_pb2.ServedBy(
            instance_id=identity.instance_id, language=LANGUAGE, service_name=identity.service_name
        )

    async def _answer(self, operation: str, request, context: grpc.aio.ServicerContext) -> float:
        text = call_text(operation, request.a, request.b)
        async with self.settings.admit(context):  # live max_connections / work_ms from config
            try:
                result = compute(operation, request.a, request.b)
            except ZeroDivisionError:
                log.warning("%s rejected: division by zero", text)
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "division by zero")
        log.info("%s = %s", text, fmt(result))
        return result

    async def Add(self, request, context):
        return calculator_pb2.AddResponse(
            result=await self._answer("Add", request, context), served_by=self.served_by
        )

    async def Subtract(self, request, context):
        result = await self._answer("Subtract", request, context)
        return calculator_pb2.SubtractResponse(result=result, served_by=self.served_by)

    async def Multiply(self, request, context):
        result = await self._answer("Multiply", request, context)
        return calculator_pb2.MultiplyResponse(result=result, served_by=self.served_by)

    async def Divide(self, request, context):
        result = await self._answer("Divide", request, context)
        return calculator_pb2.DivideResponse(result=result, served_by=self.served_by)


async def main() -> None:
    """Serve the calculator until SIGTERM/SIGINT."""
    agent = Agent([GRPC_SERVICE], default_service="calculator")
    settings = Settings(
        agent.identity.instance_id,
        broker_address=agent.identity.broker_address,
        on_degraded_p99=lambda ms: setattr(agent.health.rule, "p99_ms", ms),
    )
    calculator_pb2_grpc.add_CalculatorServiceServicer_to_server(
        Calculator(agent.identity, settings), agent.server
    )
    settings.start()  # follows config namespace "calculator"; defaults while there is none
    try:
        await agent.run()
    finally:
        await settings.stop()


if __name__ == "__main__":
    run(main)  # the event loop every Python service runs on (runtime/services/main.py)
