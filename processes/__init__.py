"""The process catalogue: parse, validate, version and deploy BPMN. No Flask."""

from processes.catalogue import DEFAULT_MAX_BYTES
from processes.catalogue import Catalogue
from processes.catalogue import DefinitionInfo
from processes.catalogue import DeployResult
from processes.parser import DealflowParser
from processes.problems import Problem

__all__ = ["DEFAULT_MAX_BYTES", "Catalogue", "DealflowParser", "DefinitionInfo", "DeployResult", "Problem"]
