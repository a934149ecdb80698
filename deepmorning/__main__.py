"""``python -m deepmorning`` runs the same CLI as the ``deepmorning`` console script."""

from deepmorning.cli import main

if __name__ == "__main__":
    main()
