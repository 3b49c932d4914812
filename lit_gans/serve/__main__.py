"""``python -m lit_gans.serve ckpt=PATH [port=8000] [host=127.0.0.1] [max_batch_size=8] ...`` (conf/serve.yaml)."""

from lit_gans.serve.app import main

if __name__ == "__main__":
    main()
