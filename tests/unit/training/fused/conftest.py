from tests.unit.training.conftest import one_intra_op_thread

__all__ = ["one_intra_op_thread"]
