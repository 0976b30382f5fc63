using System.Globalization;
using Mono.Unix.Native;
using NUnit.Framework;

namespace PipeTransport.Kestrel.Tests;

/// <summary>
/// The docs/systemd.md recipe, run: the real <c>systemd-socket-activate</c> binds the sockets, waits for
/// the first connection and only then execs the app (this test assembly's <c>--child systemd</c> mode),
/// which serves the inherited fds through <c>UsePipeTransport()</c>.
/// </summary>
public sealed class SystemdTests
{
    private const long ThirtyTwoMiB = 32L * 1024 * 1024;

    /// <summary><c>O_CLOEXEC</c> and <c>O_NONBLOCK</c> as /proc/PID/fdinfo shows them (octal flags).</summary>
    private const int FdInfoCloseOnExec = 0x80000;
    private const int FdInfoNonBlocking = 0x800;

    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("ptk-systemd-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    [Test, CancelAfter(120_000)]
    public async Task ListenHandle_3_serves_the_activated_socket_from_its_first_connection([Values] bool unix, CancellationToken ct)
    {
        string socket = Path.Combine(_dir, "http.sock");
        await using ActivatedApp app = await ActivatedApp.StartAsync("listenhandle", () => [unix ? socket : $"127.0.0.1:{NginxProcess.FreePort()}"], ct);
        using HttpClient client = app.Client(0);

        await AssertFirstConnectionStartsTheAppAsync(app, client, fds: 1, unix, ct);
        await AssertServesAsync(app, client, ct);
        Assert.That(await app.StopAsync(ct), Is.EqualTo(0), app.Output);
    }

    [Test, CancelAfter(120_000)]
    public async Task UseSystemd_serves_every_activated_socket(CancellationToken ct)
    {
        string socket = Path.Combine(_dir, "http.sock");
        await using ActivatedApp app = await ActivatedApp.StartAsync("usesystemd", () => [$"127.0.0.1:{NginxProcess.FreePort()}", socket], ct);
        using HttpClient tcp = app.Client(0);
        using HttpClient unix = app.Client(1);

        await AssertFirstConnectionStartsTheAppAsync(app, tcp, fds: 2, unix: false, ct);
        await AssertServesAsync(app, tcp, ct);
        await AssertServesAsync(app, unix, ct);
        Assert.That(await unix.GetStringAsync("/activation", ct), Does.EndWith($" {Environment.ProcessId}"), "peer credentials on the activated Unix socket");
        Assert.That(await app.StopAsync(ct), Is.EqualTo(0), app.Output);
    }

    [Test, CancelAfter(60_000)]
    public async Task The_units_in_the_doc_pass_systemd_analyze_verify(CancellationToken ct)
    {
        string doc = File.ReadAllText(Path.Combine(NginxProcess.RepositoryRoot(), "docs", "systemd.md"));
        var paths = new List<string>();
        foreach (string unit in new[] { "myapp.socket", "myapp.service" })
        {
            string marker = $"`/etc/systemd/system/{unit}`:\n\n```ini\n";
            int start = doc.IndexOf(marker, StringComparison.Ordinal);
            Assert.That(start, Is.GreaterThanOrEqualTo(0), $"docs/systemd.md has no {unit} block");
            start += marker.Length;
            string text = doc[start..doc.IndexOf("```", start, StringComparison.Ordinal)];
            if (!File.Exists("/usr/bin/dotnet"))
            {
                // verify checks that ExecStart's program exists; the dll is only an argument.
                text = text.Replace("ExecStart=/usr/bin/dotnet ", $"ExecStart={ChildProcess.DotnetHost()} ", StringComparison.Ordinal);
            }

            paths.Add(Path.Combine(_dir, unit));
            await File.WriteAllTextAsync(paths[^1], text, ct);
        }

        var result = await ProcessRunner.RunAsync(FindSystemdProgram("systemd-analyze"), ["verify", .. paths], ct);
        Assert.That(result.ExitCode, Is.Zero, result.Stdout + result.Stderr);

        // An unknown or misspelt key is only a warning ("ignoring"): none may name our units.
        Assert.That((result.Stdout + result.Stderr).Split('\n').Where(l => l.Contains("myapp.", StringComparison.Ordinal)), Is.Empty);
    }

    /// <summary>
    /// Until a client connects, the process is still systemd-socket-activate: the socket is there, the app
    /// is not. The first request's connection is what starts the app, which then serves it on the same pid.
    /// </summary>
    private static async Task AssertFirstConnectionStartsTheAppAsync(ActivatedApp app, HttpClient client, int fds, bool unix, CancellationToken ct)
    {
        Assert.That(new FileInfo($"/proc/{app.Pid}/exe").LinkTarget, Does.EndWith("/systemd-socket-activate"), "no app before the first connection");

        string[] activation = (await client.GetStringAsync("/activation", ct)).Split(' ');
        string pid = app.Pid.ToString(CultureInfo.InvariantCulture);
        Assert.That(activation, Is.EqualTo(new[] { pid, pid, fds.ToString(CultureInfo.InvariantCulture), unix ? Environment.ProcessId.ToString(CultureInfo.InvariantCulture) : "none" }),
            "pid, LISTEN_PID, LISTEN_FDS, the caller's pid");

        for (int fd = 3; fd < 3 + fds; fd++)
        {
            string flags = File.ReadLines($"/proc/{app.Pid}/fdinfo/{fd}").Single(l => l.StartsWith("flags:", StringComparison.Ordinal));
            int value = Convert.ToInt32(flags["flags:".Length..].Trim(), 8);
            Assert.That(value & FdInfoCloseOnExec, Is.EqualTo(FdInfoCloseOnExec), $"fd {fd} is close-on-exec in the app: {flags}");
            Assert.That(value & FdInfoNonBlocking, Is.EqualTo(FdInfoNonBlocking), $"fd {fd} is non-blocking in the app: {flags}");
        }
    }

    private static async Task AssertServesAsync(ActivatedApp app, HttpClient client, CancellationToken ct)
    {
        Assert.That(await client.GetStringAsync("/", ct), Is.EqualTo("hello"));
        using var post = await client.PostAsync("/sha256", new TestData.Content(ThirtyTwoMiB, 23), ct);
        Assert.That(post.IsSuccessStatusCode, $"{(int)post.StatusCode}; app: {app.Output}");
        Assert.That(await post.Content.ReadAsStringAsync(ct), Is.EqualTo($"{ThirtyTwoMiB}:{TestData.Sha256(ThirtyTwoMiB, 23)}"));
    }

    /// <summary>A program of Debian's systemd package.</summary>
    private static string FindSystemdProgram(string name)
    {
        string? path = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Append("/usr/bin")
            .Select(d => Path.Combine(d, name))
            .FirstOrDefault(File.Exists);
        if (path is null)
        {
            if (Syscall.geteuid() != 0)
            {
                Assert.Ignore($"{name} is not installed (.ci/run installs it)");
            }

            Assert.Fail($"{name} is not installed: apt-get install systemd (.ci/run does)");
        }

        return path!;
    }

    /// <summary><c>systemd-socket-activate -l ADDRESS... dotnet TESTS.dll --child systemd MODE</c>, as docs/systemd.md runs it.</summary>
    private sealed class ActivatedApp : IAsyncDisposable
    {
        /// <summary>A free port picked beforehand can be taken by someone else before the activator binds it.</summary>
        private const int Attempts = 5;

        private readonly ChildProcess _process;
        private readonly string[] _addresses;

        private ActivatedApp(ChildProcess process, string[] addresses)
        {
            _process = process;
            _addresses = addresses;
        }

        public int Pid => _process.Pid;

        public string Output => _process.Output;

        public static async Task<ActivatedApp> StartAsync(string mode, Func<string[]> addresses, CancellationToken ct)
        {
            string activator = FindSystemdProgram("systemd-socket-activate");
            for (int attempt = 1; ; attempt++)
            {
                string[] listen = addresses();
                var child = ChildProcess.Start(activator, [.. listen.SelectMany(a => new[] { "-l", a }), ChildProcess.DotnetHost(), .. ChildProcess.TestChildArguments("systemd", mode)]);
                try
                {
                    foreach (string address in listen)
                    {
                        await child.WaitLineAsync($"Listening on {address} as ", ct);
                    }

                    return new ActivatedApp(child, listen);
                }
                catch (InvalidOperationException) when (attempt < Attempts && child.Output.Contains("Address already in use", StringComparison.Ordinal))
                {
                    await child.DisposeAsync();
                }
                catch
                {
                    await child.DisposeAsync();
                    throw;
                }
            }
        }

        /// <summary>A client of the <paramref name="index"/>th activated socket.</summary>
        public HttpClient Client(int index) => _addresses[index].StartsWith('/')
            ? TestServer.CreateUnixClient(_addresses[index])
            : new HttpClient { BaseAddress = new Uri($"http://{_addresses[index]}/") };

        public Task<int> StopAsync(CancellationToken ct) => _process.StopAsync(ct);

        public ValueTask DisposeAsync() => _process.DisposeAsync();
    }
}
