"""Score networks: an encoder trunk, a main ranking head and one head per weak label.

- :class:`MLPTrunk` reads the flat encoding (e.g. ``onehot+opdist``).
- :class:`GCNTrunk` runs a directed graph convolution over the op-on-node cell DAG (messages
  along and against the data flow with separate weights), pools the nodes, and appends the flat
  encoding so the op distribution is available to the graph model too.

>>> import torch
>>> net = RankNet(MLPTrunk(35, hidden=16, layers=2), num_weak=2)
>>> main, weak = net(torch.zeros(4, 35))
>>> main.shape, weak.shape
(torch.Size([4]), torch.Size([4, 2]))
"""

from __future__ import annotations

import torch
from torch import nn


class MLPTrunk(nn.Module):
    def __init__(self, in_dim: int, hidden: int = 128, layers: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        d = in_dim
        for _ in range(layers):
            mods += [nn.Linear(d, hidden), nn.ReLU()]
            if dropout > 0:
                mods.append(nn.Dropout(dropout))
            d = hidden
        self.body = nn.Sequential(*mods)
        self.out_dim = d

    def forward(self, flat: torch.Tensor, adj: torch.Tensor | None = None,
                nodes: torch.Tensor | None = None) -> torch.Tensor:
        return self.body(flat)


def _normalise(adj: torch.Tensor) -> torch.Tensor:
    """Row-normalised adjacency: each node averages over its in-neighbours (zero rows stay zero)."""
    deg = adj.sum(-1, keepdim=True).clamp(min=1.0)
    return adj / deg


class GCNTrunk(nn.Module):
    def __init__(self, node_dim: int, flat_dim: int, hidden: int = 128, layers: int = 3,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.embed = nn.Linear(node_dim, hidden)
        self.self_w = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers))
        self.fwd_w = nn.ModuleList(nn.Linear(hidden, hidden, bias=False) for _ in range(layers))
        self.bwd_w = nn.ModuleList(nn.Linear(hidden, hidden, bias=False) for _ in range(layers))
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.mix = nn.Sequential(nn.Linear(2 * hidden + flat_dim, hidden), nn.ReLU())
        self.out_dim = hidden

    def forward(self, flat: torch.Tensor, adj: torch.Tensor | None = None,
                nodes: torch.Tensor | None = None) -> torch.Tensor:
        if adj is None or nodes is None:
            raise ValueError("the GCN trunk needs adjacency and node features")
        # adj[b, i, j] = 1 for i -> j: a node gathers from its predecessors via adj^T
        into = _normalise(adj.transpose(1, 2))
        outof = _normalise(adj)
        h = torch.relu(self.embed(nodes))
        for ws, wf, wb in zip(self.self_w, self.fwd_w, self.bwd_w):
            h = torch.relu(ws(h) + wf(into @ h) + wb(outof @ h))
            h = self.drop(h)
        pooled = torch.cat([h[:, -1], h.mean(1)], dim=1)  # output node and mean over nodes
        return self.mix(torch.cat([pooled, flat], dim=1))


class RankNet(nn.Module):
    """Trunk + main score head + one regression head per weak label."""

    def __init__(self, trunk: nn.Module, num_weak: int = 0) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = nn.Linear(trunk.out_dim, 1)
        self.weak_head = nn.Linear(trunk.out_dim, max(num_weak, 1))
        self.num_weak = num_weak

    def forward(self, flat: torch.Tensor, adj: torch.Tensor | None = None,
                nodes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.trunk(flat, adj, nodes)
        return self.head(z).squeeze(-1), self.weak_head(z)


def build_net(encoder: str, flat_dim: int, node_dim: int, num_weak: int, hidden: int, layers: int,
              dropout: float) -> RankNet:
    if encoder == "mlp":
        trunk: nn.Module = MLPTrunk(flat_dim, hidden, layers, dropout)
    elif encoder == "gcn":
        trunk = GCNTrunk(node_dim, flat_dim, hidden, layers, dropout)
    else:
        raise ValueError(f"unknown encoder {encoder!r}; choose 'mlp' or 'gcn'")
    return RankNet(trunk, num_weak)


__all__ = ["MLPTrunk", "GCNTrunk", "RankNet", "build_net"]
