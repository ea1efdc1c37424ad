"""`python -m rlvr_safety ...`: the CLI as a module, so launchers that need a Python file or `-m` can run it
(`accelerate launch -m rlvr_safety train ...`, `torchrun -m rlvr_safety train ...`)."""

from rlvr_safety.cli import main

if __name__ == "__main__":
    main()
