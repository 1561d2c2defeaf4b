"""The small ``sh`` of a simulated container (the ``sh`` tool of :mod:`kubecost_sim.execshell`).

``sh -c 'script'`` supports what scripts around ``kubectl exec``/``kubectl cp`` use: quoting,
``$VAR``/``${VAR:-x}``/``$?``/``$(...)``, assignments, globbing, ``;``/newlines, ``&&``, ``||``, ``!``,
pipes (one thread per stage, connected by OS pipes, so large streams flow with bounded memory),
redirections (``>``, ``>>``, ``<``, ``2>``, ``2>&1``, ``>&2``, ``/dev/null``) and the builtins
``exit cd set export unset : command``. Compound commands (``if``, ``for``, ``while``, ``case``,
subshells, background jobs) are refused with exit 2 and a clear message rather than half-simulated.

Modules: ``lex`` (tokens), ``parse`` (command lists), ``run`` (the ``Shell`` and ``run_sh``),
``builtin`` (the builtins).
"""
