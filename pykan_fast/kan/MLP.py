"""pykan 0.2.8's ``kan.MLP`` on pykan_fast (:class:`pykan_fast.nn.mlp.MLP`). Unlike
pykan's module, importing it does not reseed torch's global generator."""

from ..nn.mlp import MLP

__all__ = ["MLP"]
