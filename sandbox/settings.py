"""Where the sandbox keeps its data and serves it (all overridable from the environment)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class SandboxSettings:
    seed: int = 42
    charges: int = 2_000
    port: int = 12111
    # Connected accounts of the sandbox's platform account (Stripe Connect), 0 = none.
    accounts: int = 0
    data_dir: Path = PROJECT_ROOT / ".state" / "sandbox"

    @classmethod
    def from_env(cls) -> SandboxSettings:
        env = os.environ
        return cls(
            seed=int(env.get("SANDBOX_SEED", cls.seed)),
            charges=int(env.get("SANDBOX_CHARGES", cls.charges)),
            port=int(env.get("SANDBOX_PORT", cls.port)),
            accounts=int(env.get("SANDBOX_ACCOUNTS", cls.accounts)),
            data_dir=Path(env.get("SANDBOX_DATA_DIR", cls.data_dir)),
        )
