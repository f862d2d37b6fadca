"""Generated protobuf and gRPC stubs of the ``stoker.v1`` proto package.

Do not edit ``loader_pb2*``: regenerate them with ``python gen_proto.py``.
"""
