#!/usr/bin/env ruby
# frozen_string_literal: true

# A small stand-in for Homebrew's Formula DSL, so the tap's formulae can be checked where
# Homebrew does not run. It implements just enough to:
#   1. load Formula/<name>.rb (the class must be named as Homebrew names it);
#   2. check the metadata against Homebrew's style rules (the `desc` rules follow Homebrew's
#      rubocops/shared/desc_helper.rb; the service rule follows rubocops/service.rb);
#   3. run `install` into a temporary prefix laid out like Homebrew's (Cellar, opt links,
#      var, the python@3.13 and haproxy dependencies linked to this machine's programs),
#      with the freshly built zipapp staged under the url's file name, as `using: :nounzip`
#      stages a download;
#   4. run the installed executable, then the commands of the `test do` block in a temp
#      `testpath` with HOME=testpath.
#
#   ruby tests/formula/harness.rb Formula/ai-server.rb --artifact dist/ai-server --root DIR \
#        [--python /usr/bin/python3] [--haproxy /usr/sbin/haproxy] [--no-install]
#
# Prints one JSON report on stdout (what it found and ran, and "failures"), progress on stderr;
# exits 1 when anything failed.

require "fileutils"
require "ipaddr"
require "digest"
require "json"
require "open3"
require "optparse"
require "pathname"
require "socket"
require "tmpdir"
require "uri"

module Harness
  class Failure < StandardError; end
  class SkipInstall < StandardError; end

  FAILURES = [] # rubocop:disable Style/MutableConstant
  AVAILABLE = [] # rubocop:disable Style/MutableConstant -- the formula and its dependencies
  COMMANDS = [] # rubocop:disable Style/MutableConstant

  module_function

  def fail!(message)
    FAILURES << message
    warn "harness: FAIL #{message}"
  end

  def note(message)
    warn "harness: #{message}"
  end

  # What Homebrew's test and install environments look like: no tool overrides, a PATH of the
  # prefix plus the system directories, HOME in the sandbox and the variables of
  # Formula#common_sandbox_env (formula.rb:3743-3760; merged for `brew install`'s stage at
  # formula.rb:3821-3822 and for `brew test` at formula.rb:3315-3316), among them
  # PYTHONDONTWRITEBYTECODE=1 and XDG_CONFIG_HOME=<home>/.config.
  def clean_env(home)
    ENV.keys.each do |key|
      ENV.delete(key) if key.start_with?("AI_", "SHIV_", "XDG_", "FAKE_", "PYTHON")
    end
    ENV["HOME"] = home.to_s
    ENV["PATH"] = "#{HOMEBREW_PREFIX}/bin:#{HOMEBREW_PREFIX}/sbin:/usr/bin:/bin:/usr/sbin:/sbin"
    ENV["PYTHONDONTWRITEBYTECODE"] = "1"
    ENV["XDG_CONFIG_HOME"] = "#{home}/.config"
  end

  def run(args, input: nil)
    argv = args.map(&:to_s)
    out, err, status = Open3.capture3(*argv, stdin_data: input || "")
    COMMANDS << { "argv" => argv, "exit" => status.exitstatus, "stdout" => out[0, 4000],
                  "stderr" => err[0, 4000] }
    note "ran #{argv.join(" ")} -> #{status.exitstatus}"
    [out, err, status]
  end
end

# Homebrew's Pathname additions, as far as the formulae use them.
class Pathname
  # `dir.install "a"`, `dir.install "a" => "b"`, `dir.install ["a", "b"]`: moves into dir.
  def install(*sources)
    sources.each do |src|
      case src
      when Array then src.each { |s| install(s) }
      when Hash then src.each { |from, to| install_one(Pathname(from), to.to_s) }
      else install_one(Pathname(src), File.basename(src.to_s))
      end
    end
  end

  def install_one(src, new_basename)
    raise Errno::ENOENT, src.to_s unless src.exist? || src.symlink?

    mkpath
    FileUtils.mv(src.to_s, (self/new_basename).to_s)
  end

  # `dir.install_symlink target`: a relative symlink named like target inside dir.
  def install_symlink(*sources)
    mkpath
    sources.flatten.each do |src|
      target = Pathname(src)
      (self/target.basename).make_symlink(target.relative_path_from(self))
    end
  end
end

module Utils
  module Shebang
    # Homebrew's Utils::Shebang::RewriteInfo / rewrite_shebang: the first line is matched
    # against the regex (reading at most max_length bytes) and replaced in the file's bytes.
    RewriteInfo = Struct.new(:regex, :max_length, :replacement)

    def rewrite_shebang(info, *paths)
      paths.each do |path|
        path = Pathname(path)
        next unless path.file?

        head = File.binread(path, info.max_length) || ""
        raise Harness::Failure, "#{path}: shebang does not match #{info.regex.inspect}" unless
          info.regex.match?(head)

        content = File.binread(path)
        mode = path.stat.mode
        content.sub!(info.regex, "#!#{info.replacement}")
        tmp = Pathname("#{path}.tmp")
        File.binwrite(tmp, content)
        File.chmod(mode & 0o7777, tmp)
        File.rename(tmp, path)
      end
    end
  end
end

module Language
  module Python
    module Shebang
      # As in Homebrew's Language::Python::Shebang.
      PYTHON_SHEBANG_REGEX = %r{\A#! ?(?:/usr/bin/(?:env )?)?python(?:[23](?:\.\d{1,2})?)?( |$)}
      PYTHON_SHEBANG_MAX_LENGTH = "#! /usr/bin/env pythonx.yyy ".length

      def detected_python_shebang(formula = self, use_python_from_path: false)
        python_path = if use_python_from_path
          "/usr/bin/env python3"
        else
          deps = formula.deps.grep(/^python(@.+)?$/)
          raise Harness::Failure, "formula does not depend on Python" if deps.empty?
          raise Harness::Failure, "formula has multiple Python dependencies" if deps.length > 1

          Formula[deps.first].opt_bin/deps.first.sub("@", "")
        end
        Utils::Shebang::RewriteInfo.new(PYTHON_SHEBANG_REGEX, PYTHON_SHEBANG_MAX_LENGTH,
                                        "#{python_path}\\1")
      end
    end
  end
end

# `livecheck do ... end`
class LivecheckSpec
  attr_reader :data

  def initialize
    @data = {}
  end

  def url(value)
    @data["url"] = value.to_s
  end

  def strategy(value)
    @data["strategy"] = value.to_s
  end

  def regex(value)
    @data["regex"] = value.source
  end
end

# `service do ... end`, evaluated the way Homebrew::Service (Library/Homebrew/service.rb) does:
# the block is instance_eval'd on the service object (service.rb:65), which delegates only
# nine path methods to the formula (service.rb:516) -- anything else (`opt_share`, `pkgshare`,
# `prefix`, `sbin`, `share`, ...) is a NameError, so `brew services start` fails. Option values
# are checked as Homebrew checks them: its own TypeErrors (service.rb:97, 206-207, 264-269,
# 323, 340-342, 357, 421, 511) and the types of its sorbet signatures (sorbet-runtime raises
# TypeError). Uses of `bin`/`libexec` are recorded for the Cellar-path cop (rubocops/service.rb).
class ServiceSpec
  CELLAR_PATHS = { bin: :opt_bin, libexec: :opt_libexec, pkgshare: :opt_pkgshare,
                   prefix: :opt_prefix, sbin: :opt_sbin, share: :opt_share }.freeze
  DELEGATED = %i[bin etc libexec opt_bin opt_libexec opt_pkgshare opt_prefix opt_sbin var].freeze
  KEEP_ALIVE_KEYS = %i[always successful_exit crashed path].freeze # service.rb:28
  RUN_TYPES = %i[immediate interval cron].freeze # service.rb:354
  PROCESS_TYPES = %i[background standard interactive adaptive].freeze # service.rb:337
  NICE_RANGE = (-20..19) # service.rb:29
  SOCKET_STRING_REGEX = %r{^(?<type>[a-z]+)://(?<host>.+):(?<port>[0-9]+)$}i # service.rb:30
  PATH_TYPES = [String, Pathname].freeze

  attr_reader :data, :used

  def initialize(formula)
    @formula = formula
    @data = {}
    @used = []
  end

  DELEGATED.each do |meth|
    define_method(meth) do
      @used << meth
      @formula.public_send(meth)
    end
  end

  def f = @formula # service.rb:76

  def std_service_path_env
    @formula.std_service_path_env
  end

  def type!(meth, value, *types)
    return if types.any? { |type| type === value } # rubocop:disable Style/CaseEquality

    raise TypeError, "Service##{meth}: expected #{types.map(&:to_s).join(" or ")}, " \
                     "got #{value.inspect} (#{value.class})"
  end

  def run(command = nil, macos: nil, linux: nil)
    command ||= linux || macos # the Linux side of on_system_conditional (service.rb:121)
    case command
    when String, Pathname then @data["run"] = [command.to_s]
    when Array
      command.each { |arg| type!(:run, arg, String, Pathname) }
      @data["run"] = command.map(&:to_s)
    else type!(:run, command, Array, String, Pathname)
    end
  end

  def name(macos: nil, linux: nil)
    raise TypeError, "Service#name expects at least one String" if [macos, linux].none?(String)

    @data["name"] = { "macos" => macos, "linux" => linux }.compact
  end

  def environment_variables(vars = {})
    type!(:environment_variables, vars, Hash)
    vars.each do |key, value|
      type!(:environment_variables, key, Symbol)
      type!(:environment_variables, value, String, Pathname)
    end
    @data["environment_variables"] = vars.to_h { |k, v| [k.to_s, v.to_s] }
  end

  %i[working_dir root_dir input_path log_path error_log_path].each do |meth|
    define_method(meth) do |path|
      type!(meth, path, *PATH_TYPES)
      @data[meth.to_s] = path.to_s
    end
  end

  %i[require_root run_at_load launch_only_once macos_legacy_timers].each do |meth|
    define_method(meth) do |value|
      type!(meth, value, TrueClass, FalseClass)
      @data[meth.to_s] = value
    end
  end

  %i[restart_delay throttle_interval interval].each do |meth|
    define_method(meth) do |value|
      type!(meth, value, Integer)
      @data[meth.to_s] = value
    end
  end

  def stop_timeout(value)
    type!(:stop_timeout, value, Integer)
    raise TypeError, "Service#stop_timeout must be a non-negative integer" if value.negative?

    @data["stop_timeout"] = value
  end

  def keep_alive(value)
    case value
    when true, false then @data["keep_alive"] = { "always" => value }
    when Hash
      raise TypeError, "Service#keep_alive only allows: #{KEEP_ALIVE_KEYS}" unless
        (value.keys - KEEP_ALIVE_KEYS).empty?

      @data["keep_alive"] = value.transform_keys(&:to_s)
    else type!(:keep_alive, value, TrueClass, FalseClass, Hash)
    end
  end

  def run_type(value)
    type!(:run_type, value, Symbol)
    raise TypeError, "Service#run_type allows: #{RUN_TYPES.join("/")}" unless RUN_TYPES.include?(value)

    @data["run_type"] = value.to_s
  end

  def process_type(value)
    type!(:process_type, value, Symbol)
    raise TypeError, "Service#process_type allows: #{PROCESS_TYPES.join("/")}" unless
      PROCESS_TYPES.include?(value)

    @data["process_type"] = value.to_s
  end

  def nice(value)
    type!(:nice, value, Integer)
    raise TypeError, "Service#nice value should be in #{NICE_RANGE}" unless NICE_RANGE.cover?(value)

    @data["nice"] = value
  end

  def cron(value)
    type!(:cron, value, String)
    if !value.start_with?("@") && value.split.length != 5
      raise TypeError, "Service#parse_cron expects a valid cron syntax"
    end

    @data["cron"] = value
  end

  def sockets(value)
    type!(:sockets, value, String, Hash)
    (value.is_a?(String) ? { listeners: value } : value).each_value do |socket|
      match = socket.to_s.match(SOCKET_STRING_REGEX)
      raise TypeError, "Service#sockets a formatted socket definition as <type>://<host>:<port>" unless
        match

      begin
        IPAddr.new(match[:host])
      rescue IPAddr::InvalidAddressError
        raise TypeError, "Service#sockets expects a valid ipv4 or ipv6 host address"
      end
    end
    @data["sockets"] = value
  end
end

# Formula: the class-level DSL records the spec; the instance has Homebrew's paths and the
# helpers `install` and `test do` use.
class Formula
  include FileUtils
  include Utils::Shebang

  class << self
    def spec
      @spec ||= { "deps" => [] }
    end

    %w[desc homepage version sha256 license revision].each do |field|
      define_method(field) { |value| spec[field] = value }
    end

    def url(value, **options)
      spec["url"] = value
      spec["url_options"] = options.transform_keys(&:to_s).transform_values(&:to_s)
    end

    def livecheck(&block)
      live = LivecheckSpec.new
      live.instance_eval(&block)
      spec["livecheck"] = live.data
    end

    def depends_on(dep)
      name = dep.is_a?(Hash) ? dep.keys.first : dep
      spec["deps"] << name.to_s
    end

    def uses_from_macos(*); end

    def service(&block)
      spec["service_block"] = block
    end

    def test(&block)
      spec["test_block"] = block
    end

    # Formula["python@3.13"]: Homebrew loads it with Formulary.factory (formula.rb:2699-2701),
    # which raises FormulaUnavailableError for a name it cannot find. Here only the formula's
    # own dependencies are installed, so any other name is unavailable.
    def [](name)
      unless Harness::AVAILABLE.include?(name.to_s)
        raise Harness::Failure, "FormulaUnavailableError: No available formula with the name " \
                                "\"#{name}\" (not a dependency of this formula)"
      end

      Dependency.new(name.to_s)
    end
  end

  # An installed dependency: only its opt paths.
  Dependency = Struct.new(:name) do
    def opt_prefix = HOMEBREW_PREFIX/"opt"/name
    def opt_bin = opt_prefix/"bin"
    def opt_libexec = opt_prefix/"libexec"
  end

  attr_reader :name

  def initialize(name)
    @name = name
  end

  def spec = self.class.spec
  def deps = spec["deps"]
  # The `version` line, else the version Homebrew scans from the url.
  def version = (spec["version"] || Harness.version_from_url(spec["url"].to_s)).to_s
  def prefix = HOMEBREW_PREFIX/"Cellar"/name/version
  def bin = prefix/"bin"
  def sbin = prefix/"sbin"
  def libexec = prefix/"libexec"
  def share = prefix/"share"
  def pkgshare = prefix/"share"/name
  def etc = HOMEBREW_PREFIX/"etc"
  def var = HOMEBREW_PREFIX/"var"
  def opt_prefix = HOMEBREW_PREFIX/"opt"/name
  def opt_bin = opt_prefix/"bin"
  def opt_sbin = opt_prefix/"sbin"
  def opt_libexec = opt_prefix/"libexec"
  def opt_share = opt_prefix/"share"
  def opt_pkgshare = opt_prefix/"share"/name
  def testpath = @testpath || raise(Harness::Failure, "testpath outside of the test block")

  def std_service_path_env
    "#{HOMEBREW_PREFIX}/bin:#{HOMEBREW_PREFIX}/sbin:/usr/bin:/bin:/usr/sbin:/sbin"
  end

  # Utils::Path's helpers, included into Formula (formula.rb:87; utils/path.rb:28-80): the opt
  # paths of any formula by name, with no Formula object (what Homebrew/FormulaPathMethods asks
  # for instead of `Formula["x"].opt_bin`).
  def formula_opt_prefix(formula_name) = HOMEBREW_PREFIX/"opt"/formula_name.to_s.split("/").last
  def formula_opt_bin(formula_name) = formula_opt_prefix(formula_name)/"bin"
  def formula_opt_lib(formula_name) = formula_opt_prefix(formula_name)/"lib"
  def formula_opt_libexec(formula_name) = formula_opt_prefix(formula_name)/"libexec"
  def formula_opt_include(formula_name) = formula_opt_prefix(formula_name)/"include"

  def run_test(testpath)
    @testpath = testpath
    instance_exec(&spec["test_block"])
  ensure
    @testpath = nil
  end

  # --- helpers of `install` and `test do` ---

  # Formula#system's signature (formula.rb:3521): cmd String|Pathname, each argument
  # String|Integer|Pathname|Symbol; sorbet-runtime raises TypeError for anything else.
  def system(cmd, *args)
    unless [String, Pathname].any? { |type| cmd.is_a?(type) }
      raise TypeError, "Formula#system: cmd must be a String or Pathname, got #{cmd.class}"
    end
    args.each do |arg|
      next if [String, Integer, Pathname, Symbol].any? { |type| arg.is_a?(type) }

      raise TypeError, "Formula#system: argument #{arg.inspect} is a #{arg.class}, " \
                       "not String, Integer, Pathname or Symbol"
    end
    _, err, status = Harness.run([cmd, *args])
    raise Harness::Failure, "failed: #{[cmd, *args].join(" ")}\n#{err}" unless status.success?

    true
  end

  def shell_output(cmd, result = 0)
    out, err, status = Harness.run(["/bin/sh", "-c", cmd])
    unless status.exitstatus == result
      raise Harness::Failure, "`#{cmd}` exited #{status.exitstatus}, expected #{result}\n#{err}"
    end

    out
  end

  def pipe_output(cmd, input = nil, result = nil)
    out, _, status = Harness.run(["/bin/sh", "-c", cmd], input: input)
    raise Harness::Failure, "`#{cmd}` exited #{status.exitstatus}" if result && status.exitstatus != result

    out
  end

  def free_port
    server = TCPServer.new("127.0.0.1", 0)
    server.addr[1]
  ensure
    server&.close
  end

  def assert(value, message = "assertion failed")
    raise Harness::Failure, message unless value
  end

  def assert_equal(expected, actual)
    assert(expected == actual, "expected #{expected.inspect}, got #{actual.inspect}")
  end

  def assert_match(pattern, text)
    regex = pattern.is_a?(Regexp) ? pattern : Regexp.new(Regexp.escape(pattern.to_s))
    assert(regex.match?(text.to_s), "expected #{regex.inspect} to match #{text.to_s[0, 2000].inspect}")
  end

  def refute_match(pattern, text)
    regex = pattern.is_a?(Regexp) ? pattern : Regexp.new(Regexp.escape(pattern.to_s))
    assert(!regex.match?(text.to_s), "expected #{regex.inspect} not to match")
  end

  def assert_path_exists(path)
    assert(Pathname(path).exist?, "expected #{path} to exist")
  end

  def refute_path_exists(path)
    assert(!Pathname(path).exist?, "expected #{path} not to exist")
  end

  def assert_predicate(object, predicate)
    assert(object.public_send(predicate), "expected #{object} to be #{predicate}")
  end
end

module Harness
  DESC_MAX = 80
  LINE_MAX = 118 # Homebrew's Layout/LineLength for formulae
  LOWERCASE_OK = %w[iOS iPhone macOS].freeze
  CELLAR_CALL = /(?<![\w.])(bin|libexec|pkgshare|prefix|sbin|share)(?![\w"(?!])/

  module_function

  # Homebrew's Formulary.class_s
  def class_name(name)
    name.capitalize.gsub(/[-_.\s]([a-zA-Z0-9])/) { Regexp.last_match(1).upcase }.tr("+", "x")
  end

  # The desc rules of Homebrew's rubocops/shared/desc_helper.rb.
  def check_desc(name, desc)
    return fail!("desc is missing") if desc.nil? || desc.empty?

    fail!("desc has leading spaces") if desc.match?(/\A\s/)
    fail!("desc has trailing spaces") if desc.match?(/\s\z/)
    if (m = desc.match(/(command ?line)/i))
      fail!("desc should say \"#{m[1][0]}ommand-line\" instead of \"#{m[1]}\"")
    end
    fail!("desc starts with an article") if desc.match?(/\A(the|an?)(?=\s)/i)
    if !LOWERCASE_OK.include?(desc.split.first) && desc.match?(/\A[a-z]/)
      fail!("desc does not start with a capital letter")
    end
    name_regex = name.delete("-").chars.join('[\s\-]?')
    fail!("desc starts with the formula name") if desc.match?(/\A#{name_regex}\b/i)
    fail!("desc ends with a full stop") if desc.end_with?(".") && !desc.end_with?("etc.")
    fail!("desc contains emoji or symbols") if desc.match?(/\p{So}/)
    fail!("desc is #{desc.length} characters, more than #{DESC_MAX}") if desc.length > DESC_MAX
  end

  # The parsers of Homebrew's Version.detect (version.rb:344-361) that can match this project's
  # urls, in Homebrew's order: GitHub release paths (version.rb:393), a "-X.Y.Z" stem
  # (version.rb:423), a "/vX.Y[.Z]" path component (version.rb:490) and the catch-all
  # (version.rb:496). nil when none matches (Homebrew's Version::NULL).
  NUMERIC_WITH_DOTS = '(?:\d+(?:\.\d+)+)'
  NUMERIC_WITH_OPTIONAL_DOTS = '(?:\d+(?:\.\d+)*)'

  def version_from_url(url)
    spec = URI.decode_www_form_component(url.to_s)
    stem = File.basename(spec, File.extname(spec))
    [[spec, %r{github\.com/.+/releases/download/(?:[rvV]_?)?(#{NUMERIC_WITH_DOTS})/}],
     [stem, /-(#{NUMERIC_WITH_OPTIONAL_DOTS})$/],
     [spec, %r{/(?:[rvV]_?)?(\d+\.\d+(?:\.\d+){,2})}],
     [spec, /[-.vV]?(#{NUMERIC_WITH_DOTS})/]].each do |text, regex|
      match = text.match(regex)
      return match[1] if match
    end
    nil
  end

  # ResourceAuditor#audit_version (resource_auditor.rb:91-103): a missing version is an error,
  # and so is a `version` line equal to the one scanned from the url (even without --strict).
  def check_version(spec)
    scanned = version_from_url(spec["url"])
    given = spec["version"]&.to_s
    if given.nil? && scanned.nil?
      fail!("Missing version (none in the url: add a `version` line)")
    elsif given && given == scanned
      fail!("`version #{given}` is redundant with version scanned from URL")
    end
    version = given || scanned.to_s
    fail!("version #{version.inspect} is not X.Y.Z") unless version.match?(/\A\d+\.\d+\.\d+\z/)
    version
  end

  # Homebrew/FormulaPathMethods (rubocops/formula_path_methods.rb:11-17, 44-49, 113-116):
  # `Formula["x"].opt_bin` (or Formulary.factory) only to build an opt path is an offense;
  # the formula DSL has `formula_opt_bin("x")` and friends.
  FORMULA_OPT_HELPERS = %w[opt_bin opt_lib opt_libexec opt_include opt_prefix].freeze

  def check_formula_path_methods(formula_file)
    code = File.read(formula_file).gsub(/#.*$/, "")
    code.scan(/((?:::)?(?:Formula\s*\[|Formulary\.factory\s*\(?)\s*([^\])\s]+)\s*[\])]?)\.(\w+)/)
        .each do |current, name, meth|
      next unless FORMULA_OPT_HELPERS.include?(meth)

      fail!("Homebrew/FormulaPathMethods: Use `formula_#{meth}(#{name})` instead of " \
            "`#{current}.#{meth}`.")
    end
  end

  def local_url?(url) = url.to_s.start_with?("file://")

  def check_metadata(name, formula_file, spec)
    check_desc(name, spec["desc"])
    fail!("homepage is not https") unless spec["homepage"].to_s.start_with?("https://")
    version = check_version(spec)
    check_formula_path_methods(formula_file)
    url = spec["url"].to_s
    fail!("url is not fetched with using: :nounzip") unless spec["url_options"]&.dig("using") == "nounzip"
    if local_url?(url)
      # a local tap (scripts/local-tap): the zipapp built in this checkout. The staged file is
      # the url's last path component (abstract_file_download_strategy.rb:99-111), and the
      # formula installs "<name>.pyz".
      unless File.basename(URI(url).path) == "#{name}.pyz"
        fail!("url #{url} does not end in /#{name}.pyz (the file `install` moves)")
      end
    else
      fail!("url is not https") unless url.start_with?("https://")
      expected = "#{spec["homepage"]}/releases/download/v#{version}/#{name}.pyz"
      fail!("url is #{url}, expected the release asset #{expected}") unless url == expected
      live = spec["livecheck"] || {}
      fail!("livecheck is missing a url and strategy") unless live["url"] && live["strategy"]
    end
    fail!("sha256 is not 64 hex digits") unless spec["sha256"].to_s.match?(/\A\h{64}\z/)
    fail!("license is missing") if spec["license"].to_s.empty?
    fail!("does not depend on python@3.13") unless spec["deps"].include?("python@3.13")
    fail!("test do block is missing") unless spec["test_block"]
    File.readlines(formula_file).each_with_index do |line, i|
      next if line.include?("://") # Layout/LineLength's AllowURI (RuboCop's default)

      fail!("line #{i + 1} is longer than #{LINE_MAX}") if line.chomp.length > LINE_MAX
    end
  end

  # The lines of a `name do ... end` block, found from its source location.
  def block_source(block)
    file, line = block.source_location
    lines = File.readlines(file)[(line - 1)..]
    indent = lines.first[/\A */]
    body = lines.take_while.with_index { |l, i| i.zero? || !l.start_with?("#{indent}end") }
    body.join
  end

  def check_service(formula)
    block = formula.spec["service_block"]
    return nil unless block

    svc = ServiceSpec.new(formula)
    svc.instance_exec(&block)
    data = svc.data
    if data["nice"].to_i.negative? && data["require_root"] != true # service.rb:67
      raise TypeError, "Service#nice: require_root true is required for negative nice values"
    end
    # rubocops/service.rb:26,38-47: `run` (or `name`) is required
    fail!("service block has no run") unless data["run"]
    svc.used.each do |meth|
      opt = ServiceSpec::CELLAR_PATHS[meth]
      fail!("service block uses #{meth}; use #{opt} (Cellar paths change on upgrade)") if opt
    end
    code = block_source(block).gsub(/"(?:[^"\\]|\\.)*"/, '""').gsub(/#.*$/, "")
    code.scan(CELLAR_CALL).flatten.uniq.each do |meth|
      fail!("service block source mentions `#{meth}`; use opt_#{meth}")
    end
    cellar = (HOMEBREW_PREFIX/"Cellar").to_s
    flat = JSON.generate(data.transform_values { |v| v.is_a?(Array) ? v.map(&:to_s) : v.to_s })
    fail!("service block resolves to a Cellar path") if flat.include?(cellar)
    data.transform_values { |v| v.is_a?(Array) ? v.map(&:to_s) : (v.is_a?(Hash) ? v : v.to_s) }
  rescue NameError => e # a method Homebrew's service object does not have
    raise Failure, "service block: #{e.class}: #{e.message.lines.first.strip} " \
                   "(Homebrew::Service delegates only #{ServiceSpec::DELEGATED.join(", ")})"
  end

  def check_caveats(formula)
    return nil unless formula.respond_to?(:caveats)

    text = formula.caveats
    fail!("caveats is not a non-empty string") unless text.is_a?(String) && !text.strip.empty?
    fail!("caveats are not static text") unless text == formula.caveats
    text
  end

  # A Homebrew-like prefix: opt links for the dependencies, pointing at this machine's programs.
  def prepare_prefix(python, haproxy)
    %w[bin sbin var etc opt Cellar].each { |d| (HOMEBREW_PREFIX/d).mkpath }
    { "python@3.13" => { "python3.13" => python }, "haproxy" => { "haproxy" => haproxy } }
      .each do |dep, programs|
      programs.each do |exe, real|
        next if real.nil?

        link = HOMEBREW_PREFIX/"opt"/dep/"bin"/exe
        link.dirname.mkpath
        link.make_symlink(real) unless link.symlink?
        bin_link = HOMEBREW_PREFIX/"bin"/exe
        bin_link.make_symlink(link) unless bin_link.symlink?
      end
    end
  end

  def install(formula, artifact)
    stage = HOMEBREW_PREFIX/"stage"/formula.name
    FileUtils.rm_rf(stage)
    stage.mkpath
    staged = stage/File.basename(URI(formula.spec["url"]).path)
    FileUtils.cp(artifact, staged) # a download: a plain file, mode 0644
    File.chmod(0o644, staged)
    Dir.chdir(stage) { formula.install }
    formula.opt_prefix.make_symlink(formula.prefix) unless formula.opt_prefix.symlink?
    formula.bin.children.each do |exe| # `brew link`
      link = HOMEBREW_PREFIX/"bin"/exe.basename
      link.make_symlink(exe) unless link.symlink?
    end
    formula.prefix.find.select(&:file?).map { |f| f.relative_path_from(formula.prefix).to_s }.sort
  end

  def main(argv)
    opts = { "python" => "/usr/bin/python3", "haproxy" => nil }
    OptionParser.new do |o|
      o.on("--artifact PATH") { |v| opts["artifact"] = v }
      o.on("--root DIR") { |v| opts["root"] = v }
      o.on("--python PATH") { |v| opts["python"] = v }
      o.on("--haproxy PATH") { |v| opts["haproxy"] = v }
      o.on("--no-install", "only load and check the formula") { opts["no_install"] = true }
    end.parse!(argv)
    formula_file = argv.fetch(0) { abort "usage: harness.rb FORMULA.rb --artifact A --root DIR" }
    abort "harness: --artifact and --root are required" unless opts["artifact"] && opts["root"]

    Object.const_set(:HOMEBREW_PREFIX, Pathname(opts["root"]).expand_path)
    name = File.basename(formula_file, ".rb")
    report = { "formula" => name }
    begin
      load File.expand_path(formula_file)
      klass = Object.const_get(class_name(name)) if Object.const_defined?(class_name(name))
      raise Failure, "#{formula_file} does not define class #{class_name(name)} < Formula" unless
        klass.is_a?(Class) && klass < Formula

      formula = klass.new(name)
      spec = formula.spec
      AVAILABLE.concat([name, *spec["deps"]])
      report.merge!(spec.reject { |k, _| k.end_with?("_block") })
      report["version"] = formula.version
      report["class"] = klass.name
      report["unreleased_marker"] = File.read(formula_file).match?(/^\s*# unreleased:/)
      report["sha256_of_artifact"] = Digest::SHA256.file(opts["artifact"]).hexdigest
      report["sha256_matches"] = report["sha256_of_artifact"] == spec["sha256"]
      check_metadata(name, formula_file, spec)
      report["caveats"] = check_caveats(formula)
      report["service"] = check_service(formula)
      raise SkipInstall if opts["no_install"]

      prepare_prefix(opts["python"], opts["haproxy"])
      clean_env(HOMEBREW_PREFIX/"home-install")
      report["installed_files"] = install(formula, opts["artifact"])
      exe = formula.libexec/name
      report["shebang"] = File.open(exe, "rb", &:gets).chomp
      fail!("#{exe} is not executable") unless exe.executable?
      fail!("bin/#{name} is missing") unless (formula.bin/name).exist?

      clean_env(Dir.mktmpdir("home-", HOMEBREW_PREFIX.to_s))
      out, err, status = run([HOMEBREW_PREFIX/"bin"/name, "--version"])
      report["version_output"] = out.strip
      fail!("#{name} --version failed: #{err}") unless status.success?
      fail!("#{name} --version printed #{out.strip.inspect}") unless out.strip == "#{name} #{formula.version}"

      testpath = Pathname(Dir.mktmpdir("#{name}-test-", HOMEBREW_PREFIX.to_s))
      clean_env(testpath)
      first = COMMANDS.length
      Dir.chdir(testpath) { formula.run_test(testpath) }
      report["test_commands"] = COMMANDS[first..].map { |c| c["argv"].join(" ") }
      beyond_version = report["test_commands"].reject { |c| c.end_with?("--version") }
      fail!("the test block only runs --version") if beyond_version.empty?
    rescue SkipInstall
      note "--no-install: not installing"
    rescue Failure, StandardError, ScriptError => e
      fail!("#{e.class}: #{e.message}")
    end
    report["commands"] = COMMANDS
    report["failures"] = FAILURES
    puts JSON.pretty_generate(report)
    FAILURES.empty? ? 0 : 1
  end
end

exit Harness.main(ARGV) if $PROGRAM_NAME == __FILE__
