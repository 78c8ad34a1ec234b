"""Wrong answers to lesson 07's exercise (promote a version)."""

BUMP = '    config["applications"][0]["deployments"][0]["user_config"]["rollout"] += 1  # a new user_config\n'

EXERCISES = {
    "promote": {
        "the alias moved, the app not told (no new user_config)": (BUMP, ""),
        "the alias moved, nothing deployed": (BUMP + "    servekit.deploy_config(config)\n", ""),
        "the app told, the alias not moved": (
            '    client.set_registered_model_alias("sentiment", "champion", version)\n',
            "",
        ),
    }
}
