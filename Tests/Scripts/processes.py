"""Running the scripts the tests drive."""

import subprocess


def run_terminating(command: list[str], timeout: float) -> tuple[int, str]:
    """Runs `command`; past `timeout` it gets SIGTERM (so it stops what it started and
    unmounts), then SIGKILL a minute later. Returns the exit status and the output."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            output, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        output += f"\n(timed out after {timeout} s)"
    return process.returncode, output
