"""Peak resident memory of `kiosk demo` (the whole scripted queue). Goal ≤ 120 MB."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

from benchlib import machine_info


def main() -> None:
    subprocess.run(
        [sys.executable, "-c", "from kiosk.cli.main import main; main()", "demo"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"kiosk demo: peak resident memory {peak_mb:.1f} MB (goal ≤ 120 MB)")
    print(
        json.dumps(
            {"demo_peak_rss_mb": round(peak_mb, 1), "goal_mb": 120, "machine": machine_info()}
        )
    )


if __name__ == "__main__":
    main()
