using PipeTransport.Perf.Harness;
using PipeTransport.Perf.Kestrel;

namespace PipeTransport.Perf.Scenarios;

/// <summary>Every scenario by command-line name, and the groups that name several.</summary>
internal static class ScenarioCatalog
{
    public static readonly IReadOnlyList<IScenario> All =
    [
        new FifoReadScenario(),
        new FifoReadFreshScenario(),
        new FifoCopyScenario(),
        new SocketThroughputScenario(SocketKind.Tcp),
        new SocketThroughputScenario(SocketKind.Unix),
        new PingPongScenario(SocketKind.Tcp),
        new PingPongScenario(SocketKind.Unix),
        new IdleMemoryScenario(),
        new BridgeFifoScenario(),
        new BridgeTcpUnixScenario(),
        new BridgeScriptScenario(),
        .. KestrelScenarios.All,
    ];

    public static readonly IReadOnlyDictionary<string, string[]> Groups = new Dictionary<string, string[]>
    {
        ["fifo"] = ["fifo-read", "fifo-read-fresh", "fifo-copy"],
        ["sockets"] = ["tcp", "unix", "pingpong-tcp", "pingpong-unix", "idle-tcp"],
        ["bridge"] = ["bridge-fifo", "bridge-tcp-unix", "bridge-script"],
        ["kestrel"] = KestrelScenarios.All.Select(s => s.Name).ToArray(),
        ["all"] = All.Select(s => s.Name).ToArray(),
    };

    /// <summary>The scenarios named (or grouped) by <paramref name="names"/>, in catalog order.</summary>
    public static IReadOnlyList<IScenario> Select(IEnumerable<string> names)
    {
        var wanted = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (string name in names)
        {
            if (Groups.TryGetValue(name, out var members))
            {
                wanted.UnionWith(members);
            }
            else if (All.Any(s => string.Equals(s.Name, name, StringComparison.OrdinalIgnoreCase)))
            {
                wanted.Add(name);
            }
            else
            {
                throw new ArgumentException($"unknown scenario '{name}'; known: {string.Join(", ", All.Select(s => s.Name).Concat(Groups.Keys))}");
            }
        }

        return All.Where(s => wanted.Contains(s.Name)).ToArray();
    }
}
