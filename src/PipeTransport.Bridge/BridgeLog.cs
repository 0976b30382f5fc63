namespace PipeTransport.Bridge;

/// <summary>
/// Messages on stderr by severity, as socat's -d levels: errors always, warnings with -d, notices
/// (listening, connections, byte counts, child exits) with -d -d, details with -d -d -d. One line each,
/// "pipebridge: MESSAGE".
/// </summary>
internal sealed class BridgeLog(TextWriter writer, int level)
{
    public const int WarningLevel = 1;
    public const int NoticeLevel = 2;
    public const int InfoLevel = 3;

    /// <summary>The -d count.</summary>
    public int Level => level;

    public TextWriter Writer => writer;

    public bool ShowsNotices => level >= NoticeLevel;

    public void Error(string message) => writer.WriteLine($"{Program.Name}: {message}");

    /// <summary>A line whatever the level (what --stats asked for).</summary>
    public void Report(string message) => writer.WriteLine($"{Program.Name}: {message}");

    public void Warning(string message)
    {
        if (level >= WarningLevel) writer.WriteLine($"{Program.Name}: {message}");
    }

    public void Notice(string message)
    {
        if (level >= NoticeLevel) writer.WriteLine($"{Program.Name}: {message}");
    }

    public void Info(string message)
    {
        if (level >= InfoLevel) writer.WriteLine($"{Program.Name}: {message}");
    }
}
