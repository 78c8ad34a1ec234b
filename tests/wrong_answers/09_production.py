"""Wrong answers to lesson 09's exercise (scale through the config file and the CLI)."""

EXERCISES = {
    "scale": {
        "the file not rewritten (serve deploy reads the old one)": ("    write_config()\n", ""),
        "the file rewritten, not deployed": ('    cluster.serve("deploy", str(config_file))\n', ""),
    }
}
