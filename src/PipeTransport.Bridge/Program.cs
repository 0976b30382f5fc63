using System.CommandLine;

namespace PipeTransport.Bridge;

internal static class Program
{
    public const string Name = "pipebridge";

    private static int Main(string[] args)
    {
        var command = new BridgeCommand(withBuiltIns: BridgeCommand.MayAskForBuiltIn(args));
        ParseResult parseResult = command.Root.Parse(args);
        // --help and --version run even when the addresses are missing.
        if (BridgeCommand.IsBuiltInAction(parseResult))
            return parseResult.Invoke();
        // System.CommandLine takes an unknown "--x" for an argument; name it as the option it looks like.
        string? unknownOption = parseResult.Tokens
            .Where(t => t.Type == System.CommandLine.Parsing.TokenType.Argument && t.Value.Length > 1 && t.Value[0] == '-')
            .Select(t => t.Value)
            .FirstOrDefault();
        if (unknownOption is not null)
            return UsageError($"unknown option '{unknownOption}'");
        if (parseResult.Errors.Count > 0)
            return UsageError(parseResult.Errors[0].Message.TrimEnd('.'));
        BridgeOptions options;
        try
        {
            options = command.Bind(parseResult);
        }
        catch (UsageException e)
        {
            return UsageError(e.Message);
        }
        return BridgeRunner.Run(options);
    }

    private static int UsageError(string message)
    {
        StandardError.Writer.WriteLine($"{Name}: {message} (see {Name} --help)");
        return ExitCodes.Usage;
    }
}
