//! A conformance vector: the JSON DSL documented at the top of
//! test/conformance/runner.mjs, parsed into [`Step`]s.
//!
//! Parsing is split as the JS runner fails: JSON that does not parse at all
//! has no expectation, while a vector whose program is malformed still has
//! its `expect` and `virtualOnly`, and fails with a runner error.

use serde_json::Value;

/// One vector, as read from `test/conformance/vectors/<name>.json`.
pub struct Vector {
    /// Runs only on the virtual backend.
    pub virtual_only: bool,
    /// The log it must produce (kept as JSON, compared as JSON).
    pub expect: Value,
    /// What to run, or why it cannot run.
    pub program: Result<Program, String>,
}

pub struct Program {
    pub steps: Vec<Step>,
    pub run: Run,
}

/// How long the loop runs after the program is set up.
pub enum Run {
    /// `runUntilComplete(() => loop.sleep(ms))`.
    For(f64),
    /// `runForever()`, then "stopped" is logged.
    Forever,
}

/// One step of a program (see runner.mjs for what each does).
pub enum Step {
    Soon {
        name: String,
        then: Vec<Step>,
    },
    Later {
        name: String,
        ms: f64,
        then: Vec<Step>,
    },
    At {
        name: String,
        ms: f64,
        then: Vec<Step>,
    },
    Cancel(String),
    Throw {
        message: String,
        ms: f64,
    },
    Microtask(String),
    Sleep {
        name: String,
        ms: f64,
    },
    Time(String),
    Stop,
}

impl Vector {
    pub fn parse(json: &str) -> Vector {
        let value: Value = match serde_json::from_str(json) {
            Ok(value) => value,
            Err(error) => {
                return Vector {
                    virtual_only: false,
                    expect: Value::Null,
                    program: Err(format!("invalid JSON: {error}")),
                }
            }
        };
        Vector {
            virtual_only: value["virtualOnly"] == Value::Bool(true),
            expect: value["expect"].clone(),
            program: Program::parse(&value),
        }
    }
}

impl Program {
    fn parse(vector: &Value) -> Result<Program, String> {
        let steps = steps(&vector["program"])?;
        let run = if vector["runForever"] == Value::Bool(true) {
            Run::Forever
        } else {
            Run::For(
                millis(&vector["run"])
                    .ok_or("vector: \"run\" must be a number of ms (or runForever)")?,
            )
        };
        Ok(Program { steps, run })
    }
}

/// A list of steps; `null` (an absent `then`) is an empty one.
fn steps(list: &Value) -> Result<Vec<Step>, String> {
    match list {
        Value::Null => Ok(Vec::new()),
        Value::Array(steps) => steps.iter().map(Step::parse).collect(),
        other => Err(format!(
            "conformance vector: a program must be a list of steps, got {other}"
        )),
    }
}

/// A delay: a number, or the string "Infinity".
fn millis(value: &Value) -> Option<f64> {
    match value {
        Value::String(s) if s == "Infinity" => Some(f64::INFINITY),
        value => value.as_f64(),
    }
}

impl Step {
    /// Recognises a step by its key, in the order runner.mjs tests them.
    fn parse(value: &Value) -> Result<Step, String> {
        // The JS runner throws a TypeError, logged as the first line of its stack.
        let unknown = || format!("TypeError: conformance vector: unknown step {value}");
        let step = value.as_object().ok_or_else(unknown)?;
        let text = |key: &str| {
            step[key]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("conformance vector: \"{key}\" must be a string in {value}"))
        };
        let ms = || {
            millis(step.get("ms").unwrap_or(&Value::Null))
                .ok_or_else(|| format!("conformance vector: \"ms\" must be a number in {value}"))
        };
        let then = || steps(step.get("then").unwrap_or(&Value::Null));
        let has = |key: &str| step.contains_key(key);
        Ok(if has("soon") {
            Step::Soon {
                name: text("soon")?,
                then: then()?,
            }
        } else if has("later") {
            Step::Later {
                name: text("later")?,
                ms: ms()?,
                then: then()?,
            }
        } else if has("at") {
            Step::At {
                name: text("at")?,
                ms: ms()?,
                then: then()?,
            }
        } else if has("cancel") {
            Step::Cancel(text("cancel")?)
        } else if has("throw") {
            Step::Throw {
                message: text("throw")?,
                ms: ms()?,
            }
        } else if has("microtask") {
            Step::Microtask(text("microtask")?)
        } else if has("sleep") {
            Step::Sleep {
                name: text("sleep")?,
                ms: ms()?,
            }
        } else if has("time") {
            Step::Time(text("time")?)
        } else if has("stop") {
            Step::Stop
        } else {
            return Err(unknown());
        })
    }
}
