using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Mono.Unix.Native;
using NUnit.Framework;

namespace PipeTransport.Kestrel.Tests;

/// <summary>The deploy script of docs/handoff.md, taken from the markdown as it is and run against the child app under load.</summary>
public sealed partial class HandOffScriptTests
{
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("ptk-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    [Test, CancelAfter(120_000)]
    public async Task DeployScriptFromTheDocs_ReplacesTheApp_WithoutErrors(CancellationToken ct)
    {
        string script = Path.Combine(_dir, "deploy.sh");
        await File.WriteAllTextAsync(script, ExtractDeployScript(), ct);
        string unixPath = Path.Combine(_dir, "http.sock"), handOff = Path.Combine(_dir, "handoff.sock"), pidFile = Path.Combine(_dir, "pid");
        int port = HandOffRestartTests.FreePort();
        string[] app = [ChildProcess.DotnetHost(), .. ChildProcess.TestChildArguments("handoff", "pipe", unixPath, port.ToString(CultureInfo.InvariantCulture), handOff)];

        await using ChildProcess old = ChildProcess.Start(app[0], app[1..]);
        int newPid = 0;
        try
        {
            await old.WaitLineAsync("Serving hand-off at", ct);
            await File.WriteAllTextAsync(pidFile, $"{old.Pid}\n", ct);
            await using var load = LoadLoop.Start(port, unixPath, 16, ct);
            await load.WaitForRequestsAsync(16, ct);

            await using ChildProcess deploy = ChildProcess.Start("/bin/sh", [script, pidFile, .. app]);
            int deployed = await deploy.WaitForExitAsync(ct);
            Assert.That(deployed, Is.Zero, deploy.Output);
            newPid = int.Parse((await File.ReadAllTextAsync(pidFile, ct)).Trim(), CultureInfo.InvariantCulture);
            Assert.That(deploy.Output, Does.Contain($"deploy: pid {newPid} serves"));
            Assert.That(await old.WaitForExitAsync(ct), Is.Zero, old.Output);
            long before = load.Answered;
            await load.WaitForRequestsAsync(before + 16, ct);

            LoadResult result = await load.StopAsync();
            await TestContext.Out.WriteLineAsync($"deploy script: {result.Requests} requests, {result.Errors} errors");
            Assert.That(result.FirstErrors, Is.Empty);
            Assert.That((result.Errors, result.Non2xx, result.Answered), Is.EqualTo((0L, 0L, result.Requests)));
            Assert.That(result.Pids, Does.Contain($"hello {newPid}"), "the new instance answers");
        }
        finally
        {
            if (newPid > 0)
            {
                await StopOrphanAsync(newPid, ct);
            }
        }
    }

    /// <summary>The script the docs give: the sh block that starts with <c>#!/bin/sh</c> and names deploy.sh.</summary>
    private static string ExtractDeployScript()
    {
        string markdown = File.ReadAllText(FindDocs("handoff.md"));
        Match block = ShellBlocks().Matches(markdown).FirstOrDefault(m => m.Groups[1].Value.StartsWith("#!/bin/sh\n# deploy.sh", StringComparison.Ordinal))
            ?? throw new AssertionException("docs/handoff.md has no ```sh block starting with #!/bin/sh and # deploy.sh");
        return block.Groups[1].Value;
    }

    private static string FindDocs(string name)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "docs", name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }
        throw new FileNotFoundException($"docs/{name} not found above {AppContext.BaseDirectory}");
    }

    /// <summary>The instance the script started is not our child: SIGTERM it and wait until its pid is gone.</summary>
    private static async Task StopOrphanAsync(int pid, CancellationToken ct)
    {
        Process process;
        try
        {
            process = Process.GetProcessById(pid);
        }
        catch (ArgumentException)
        {
            return;
        }
        using (process)
        {
            Syscall.kill(pid, Signum.SIGTERM);
            await process.WaitForExitAsync(ct);
        }
    }

    [GeneratedRegex(@"```sh\n(.*?)```", RegexOptions.Singleline)]
    private static partial Regex ShellBlocks();
}
