"""What every calculator server and client agree on, in any language.

The gRPC service name comes from the generated descriptor (never typed twice): servers register
it with the broker, clients look it up.

    >>> GRPC_SERVICE
    'calculator.v1.CalculatorService'
"""

from __future__ import annotations

from calculator.v1 import calculator_pb2

GRPC_SERVICE = calculator_pb2.DESCRIPTOR.services_by_name["CalculatorService"].full_name
