"""``completion bash|zsh``: shell completion scripts for skyctl.

Where it sits: a verb that needs no server. The scripts complete verbs, kinds (from the
registry, with their short names, so a new kind completes without touching this file) and the
common flags; object names are not completed (that would need a request per keystroke). zsh
reuses the bash function through ``bashcompinit``. Install with
``source <(skyctl completion bash)``.
"""

from __future__ import annotations

from api_types import registry
from skyctl.kinds import short_names

__all__ = ["SHELLS", "completion_script"]

SHELLS = ("bash", "zsh")

_BASH = r"""# skyctl bash completion: source <(skyctl completion bash)
_skyctl() {
    local cur prev verb
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    verb="${COMP_WORDS[1]}"
    case "$prev" in
        -f|--filename) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        -o|--output) COMPREPLY=($(compgen -W "wide yaml json name jsonpath= custom-columns=" \
            -- "$cur")); return ;;
        --type) COMPREPLY=($(compgen -W "merge json" -- "$cur")); return ;;
    esac
    if [[ $COMP_CWORD -eq 1 ]]; then
        COMPREPLY=($(compgen -W "__VERBS__" -- "$cur")); return
    fi
    case "$verb" in
        get|describe|delete|wait|history|explain|patch|label|annotate|edit|create)
            if [[ $COMP_CWORD -eq 2 && "$cur" != -* ]]; then
                COMPREPLY=($(compgen -W "__KINDS__" -- "$cur")); return
            fi ;;
        sync)
            if [[ $COMP_CWORD -eq 2 && "$cur" != -* ]]; then
                COMPREPLY=($(compgen -W "gitsource gs" -- "$cur")); return
            fi ;;
        completion) COMPREPLY=($(compgen -W "bash zsh" -- "$cur")); return ;;
        config) COMPREPLY=($(compgen -W "get-contexts use-context current-context set-context" \
            -- "$cur")); return ;;
        auth) COMPREPLY=($(compgen -W "can-i" -- "$cur")); return ;;
    esac
    COMPREPLY=($(compgen -W "__FLAGS__" -- "$cur"))
}
complete -o default -F _skyctl skyctl
"""

_ZSH_PREAMBLE = """#compdef skyctl
# skyctl zsh completion: source <(skyctl completion zsh)
autoload -U +X bashcompinit && bashcompinit
"""

VERBS = (
    "apply create get describe delete diff patch label annotate edit wait sync events history "
    "explain auth version api-resources completion config"
)
FLAGS = (
    "-f --filename -R --recursive -o --output -w --watch --output-watch-events -l --selector "
    "--field-selector -n --namespace -A --all-namespaces --context --server --token --etcd "
    "--dry-run --prune --wait --timeout --for -p --patch --type --overwrite --show-labels "
    "--namespaced"
)


def completion_script(shell: str) -> str:
    kinds = " ".join(
        name
        for info in registry.all_kinds()
        for name in (info.kind.lower(), info.plural, *short_names(info))
    )
    body = _BASH.replace("__VERBS__", VERBS).replace("__KINDS__", kinds)
    body = body.replace("__FLAGS__", FLAGS)
    return _ZSH_PREAMBLE + body if shell == "zsh" else body
